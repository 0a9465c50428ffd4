"""FiNeMo bridge: map the motifs tfmodisco-lite discovered back onto every scored locus.

`call_hits` reads the central window of a score file (the same reader as `bpnetz modisco`), lays it out as
FiNeMo's regions (one-hot and contributions as (N, 4, W), and each region's chromosome and genomic start), loads
the patterns of a tfmodisco-lite results file with FiNeMo's own loader (CWMs of both strands, trimmed to their
informative core) and runs FiNeMo's hit caller (sparse non-negative reconstruction of the contributions by the
CWMs, L1 penalty ``lambda_``) through its Python API. FiNeMo's writers then produce, in the output directory:
``hits.tsv`` (every hit: chr, start, end, motif_name, strand, hit_coefficient, hit_similarity, hit_correlation,
hit_importance, peak_name, peak_id, ...), ``hits_unique.tsv``, ``hits.bed``, ``peaks_qc.tsv`` and
``motif_data.tsv``; this module adds ``summary.json``.

FiNeMo (and PyTorch) form the optional extra ``bpnetz[hits]``; they are imported only when hits are called.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bpnetz.errors import InputError
from bpnetz.files.atomic import output_directory, write_text
from bpnetz.motifs.modisco import Pattern, ScoreWindow, load_patterns, load_score_window

MODES = ("pp", "ph", "hp", "hh")


def import_finemo() -> tuple[ModuleType, ModuleType]:
    """FiNeMo's ``data_io`` and ``hitcaller`` modules, or an InputError saying how to install them."""
    try:
        from finemo import data_io, hitcaller
    except ImportError as err:
        raise InputError(f"hit calling needs FiNeMo, which is not installed ({err}).",
                         fix="Install the optional extra: pip install 'bpnetz[hits]'.") from err
    return data_io, hitcaller


@dataclass
class Regions:
    """Where each scored window lies: chromosome, 0-based genomic start and a name, one entry per locus."""

    chroms: list[str]
    starts: np.ndarray
    names: list[str]


def regions_from_scores(scores: ScoreWindow) -> Regions:
    """Regions from the score file's own coordinates."""
    if scores.chroms is None or scores.starts is None:
        raise InputError("the score file has no coords_chrom/coords_start/coords_end, so hits cannot be placed "
                         "on the genome.", path=scores.path,
                         fix="Pass --peaks with the scored peaks (same order), or rescore with `bpnetz shap`.")
    ends = scores.starts + scores.width
    return Regions(scores.chroms, scores.starts,
                   [f"{c}:{s}-{e}" for c, s, e in zip(scores.chroms, scores.starts, ends)])


def regions_from_peaks(peaks: str | os.PathLike, scores: ScoreWindow) -> Regions:
    """Regions from a BED / narrowPeak file listing the scored loci in score-file order.

    A window is centred on the peak's summit (narrowPeak column 10, an offset from the start) when present,
    otherwise on the midpoint of the interval, as the scored sequences are. Column 4 names the region.
    """
    path = Path(peaks)
    if not path.is_file():
        raise InputError("peaks file not found.", path=path, fix="Pass the BED/narrowPeak file of the scored loci.")
    chroms, starts, names = [], [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            cols = line.rstrip("\n").split("\t")
            try:
                start, end = int(cols[1]), int(cols[2])
                summit = int(cols[9]) if len(cols) >= 10 and cols[9] not in ("", ".", "-1") else None
            except (IndexError, ValueError) as err:
                raise InputError(f"line {lineno}: expected chrom, start, end (tab-separated integers) ({err}).",
                                 path=path, fix="Pass a BED or narrowPeak file.") from err
            centre = start + summit if summit is not None else (start + end) // 2
            chroms.append(cols[0])
            starts.append(centre - scores.width // 2)
            names.append(cols[3] if len(cols) >= 4 and cols[3] not in ("", ".") else f"{cols[0]}:{start}-{end}")
    if len(chroms) != scores.n_loci:
        raise InputError(f"{len(chroms)} peaks for {scores.n_loci} scored loci.", path=path,
                         fix="Pass the peaks the score file was computed on, in the same order.")
    return Regions(chroms, np.asarray(starts, dtype=np.int64), names)


@dataclass
class HitsSummary:
    """Outcome of :func:`call_hits`."""

    modisco: str
    scores: str
    output_dir: str
    n_loci: int
    window: int
    n_hits: int
    loci_with_hit: int
    hits_per_motif: dict[str, int]
    lambda_: float
    mode: str
    files: dict[str, str]
    runtime_s: float

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        """A few lines for the terminal: hits per motif and a closing summary line."""
        lines = [f"  {name:<28} {n:>7} hits" for name, n in self.hits_per_motif.items()]
        lines.append(f"hits: {self.n_hits} hits of {len(self.hits_per_motif)} motifs; {self.loci_with_hit} of "
                     f"{self.n_loci} loci have at least one ({self.runtime_s:.1f} s) -> {self.files['hits']}")
        return "\n".join(lines)


def call_hits(modisco_h5: str | os.PathLike, scores_h5: str | os.PathLike, output_dir: str | os.PathLike, *,
              scores_key: str = "hyp_scores", peaks: str | os.PathLike | None = None, window: int = 1000,
              lambda_: float = 0.7, mode: str = "pp", trim_threshold: float = 0.3, batch_size: int = 2000,
              max_steps: int = 10000) -> HitsSummary:
    """Call hits of every tfmodisco-lite pattern on every locus of a score file with FiNeMo.

    ``window``: central bases of each locus searched (clipped to the scored length, made even as FiNeMo
    requires). ``lambda_``: FiNeMo's L1 penalty and minimum hit correlation (its ``--global-lambda``, formerly
    ``--alpha``). ``mode``: FiNeMo's contribution types for motifs and scores ('p' projected, 'h' hypothetical).
    """
    t0 = time.perf_counter()
    _check_settings(mode, lambda_, trim_threshold)
    data_io, hitcaller = import_finemo()
    patterns, scores, regions = _load_inputs(modisco_h5, scores_h5, scores_key, window, peaks)

    out = Path(output_dir)
    with output_directory(out, what="hits output directory") as tmp:
        return _fit_and_write(tmp, out, data_io, hitcaller, patterns, scores, regions, str(modisco_h5), t0, lambda_,
                              mode, trim_threshold, batch_size, max_steps)


def _fit_and_write(tmp: Path, out: Path, data_io: Any, hitcaller: Any, patterns: list[Pattern], scores: ScoreWindow,
                   regions: Any, modisco_h5: str, t0: float, lambda_: float, mode: str, trim_threshold: float,
                   batch_size: int, max_steps: int) -> HitsSummary:
    """Run FiNeMo and write its files and the summary into ``tmp`` (paths recorded as under ``out``)."""
    import polars as pl

    chrom_ids = {c: i for i, c in enumerate(dict.fromkeys(regions.chroms))}
    peaks_df = pl.DataFrame({
        "chr": regions.chroms, "peak_region_start": regions.starts.astype(np.int32),
        "peak_name": regions.names, "peak_id": np.arange(scores.n_loci, dtype=np.uint32),
        "chr_id": np.array([chrom_ids[c] for c in regions.chroms], dtype=np.uint32)})
    motif_type = "cwm" if mode[0] == "p" else "hcwm"
    motifs_df, cwms, trim_masks, _ = data_io.load_modisco_motifs(
        modisco_h5, None, None, trim_threshold, motif_type, None, None, None, lambda_, True)
    sequences = np.ascontiguousarray(scores.one_hot.transpose(0, 2, 1)).astype(np.int8)
    contribs = np.ascontiguousarray(scores.hypothetical.transpose(0, 2, 1)).astype(np.float16)
    print(f"hits: {len(patterns)} motifs on {scores.n_loci} loci × {scores.width} bp (lambda {lambda_}, "
          f"mode {mode})", flush=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No GPU available")  # CPU is a supported choice here
        hits_df, qc_df = hitcaller.fit_contribs(
            cwms, contribs, sequences, trim_masks, mode[1] == "h",
            motifs_df.get_column("lambda").to_numpy(writable=True), max_steps=max_steps,
            batch_size=max(1, min(batch_size, scores.n_loci)), post_filter=True)
    data_io.write_hits(hits_df, peaks_df, motifs_df, qc_df, str(tmp), cwms.shape[2])
    data_io.write_qc(qc_df, peaks_df, str(tmp / "peaks_qc.tsv"))
    data_io.write_motifs_df(motifs_df, str(tmp / "motif_data.tsv"))
    hits = pl.read_csv(tmp / "hits.tsv", separator="\t", columns=["motif_name", "peak_id"])
    counts = dict(hits.group_by("motif_name").len().iter_rows())
    summary = HitsSummary(
        modisco=str(modisco_h5), scores=str(scores.path), output_dir=str(out), n_loci=scores.n_loci,
        window=scores.width, n_hits=hits.height, loci_with_hit=hits.get_column("peak_id").n_unique(),
        hits_per_motif={p.name: int(counts.get(p.name, 0)) for p in patterns}, lambda_=lambda_, mode=mode,
        files={"hits": str(out / "hits.tsv"), "hits_unique": str(out / "hits_unique.tsv"),
               "hits_bed": str(out / "hits.bed"), "summary": str(out / "summary.json")},
        runtime_s=round(time.perf_counter() - t0, 2))
    write_text(tmp / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _check_settings(mode: str, lambda_: float, trim_threshold: float) -> None:
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}.", fix=f"Use one of {', '.join(MODES)}.")
    if not 0 < lambda_ < 1:
        raise InputError(f"lambda must lie in (0, 1), got {lambda_}.", fix="FiNeMo's default is 0.7.")
    if not 0 <= trim_threshold < 1:
        raise InputError(f"the CWM trim threshold must lie in [0, 1), got {trim_threshold}.")


def _load_inputs(modisco_h5: str | os.PathLike, scores_h5: str | os.PathLike, scores_key: str, window: int,
                 peaks: str | os.PathLike | None) -> tuple[list[Any], Any, Any]:
    """The patterns (the file checked before FiNeMo reads it), the scores' central window of an even width
    (FiNeMo's requirement) and the loci's regions."""
    patterns = load_patterns(modisco_h5)
    if not patterns:
        raise InputError("the modisco results hold no patterns, so there is nothing to map.", path=modisco_h5,
                         fix="Rerun `bpnetz modisco` with more loci or seqlets.")
    scores = load_score_window(scores_h5, key=scores_key, window=window)
    if scores.width % 2:
        scores = load_score_window(scores_h5, key=scores_key, window=scores.width - 1)
    regions = regions_from_peaks(peaks, scores) if peaks is not None else regions_from_scores(scores)
    if scores.width < patterns[0].cwm.shape[0]:
        raise InputError(f"the window of {scores.width} bp is shorter than the motifs "
                         f"({patterns[0].cwm.shape[0]} bp).", fix="Use a larger --window.")
    return patterns, scores, regions
