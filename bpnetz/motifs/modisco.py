"""tfmodisco-lite bridge: motif discovery on a contribution-score file, and everything written from its result.

`run_modisco` reads the central window of a reference-format score file (``hyp_scores`` and ``input_seqs``,
(N, L, 4), as ``modisco motifs --h5py`` reads them), runs tfmodisco-lite through its Python API and writes, into
one output directory:

- ``modisco_results.h5`` in tfmodisco-lite's own format (its writer), so ``modisco report`` and FiNeMo read it;
- ``logos/<pattern>.{cwm_fwd,cwm_rev,ic}.png``: contribution-weight-matrix logos of both strands and the
  information-content logo of the PFM;
- ``patterns.meme``: each pattern's PFM, trimmed to its informative core, in MEME format;
- ``seqlets.bed``: every seqlet in genome coordinates (when the score file carries coordinates);
- ``report.html``: a self-contained page (logos embedded) listing each pattern, and with a motif database the
  best TOMTOM matches (memelite) with their p- and q-values;
- ``summary.json``.

tfmodisco-lite is deterministic (its Leiden runs use fixed seeds 1..n), so no seed is taken here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bpnetz.errors import InputError
from bpnetz.files.atomic import atomic_output, output_directory, write_text
from bpnetz.files.h5 import h5_image_output, open_h5
from bpnetz.files.names import safe_name
from bpnetz.genome.motif import format_meme, ic_scaled, read_meme_motifs
from bpnetz.genome.sequence import reverse_complement_onehot

SEQUENCE_KEY = "input_seqs"
COORD_KEYS = ("coords_chrom", "coords_start", "coords_end")
PATTERN_GROUPS = ("pos_patterns", "neg_patterns")
RESULTS_NAME = "modisco_results.h5"
TRIM_THRESHOLD = 0.3  # columns whose |CWM| sum is below this fraction of the maximum are flanks
LOGO_PAD = 4  # flank columns kept around the informative core in logos
BASES = "ACGT"


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


# -------------------------------------------------------------------------------------------- score files

@dataclass
class ScoreWindow:
    """The central ``width`` bases of every locus of a score file.

    ``one_hot`` and ``hypothetical`` are (N, width, 4) float32; ``chroms``/``starts`` give each window's
    genomic chromosome and 0-based start (None when the file has no ``coords_*`` datasets).
    """

    path: Path
    one_hot: np.ndarray
    hypothetical: np.ndarray
    offset: int
    chroms: list[str] | None
    starts: np.ndarray | None

    @property
    def n_loci(self) -> int:
        return self.one_hot.shape[0]

    @property
    def width(self) -> int:
        return self.one_hot.shape[1]


def central_window(length: int, window: int) -> tuple[int, int]:
    """[start, end) of the central ``window`` bases (clipped to ``length``), centred as tfmodisco-lite does."""
    width = min(window, length)
    start = length // 2 - width // 2
    return start, start + width


def load_score_window(scores_h5: str | os.PathLike, *, key: str = "hyp_scores", window: int = 400) -> ScoreWindow:
    """Read and validate the central ``window`` bases of a score file (reference format, (N, L, 4) arrays).

    A locus's coordinates are taken to be centred on the scored sequence (true of the input window, the output
    window and the summit alike), so the window starts at ``(coords_start + coords_end) // 2 - L // 2 + offset``.
    """
    path = Path(scores_h5)
    if window < 1:
        raise InputError(f"the window must be at least 1 base, got {window}.", fix="Pass --window 400 or similar.")
    f = open_h5(path, "score file", "Pass the counts_scores.h5 or profile_scores.h5 written by `bpnetz shap`.")
    with f:
        for name in (key, SEQUENCE_KEY):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise InputError(f"no dataset {name!r}; it has {sorted(f.keys())}.", path=path,
                                 fix="Pass a score file with 'hyp_scores' and 'input_seqs' (N, L, 4), or name the "
                                     "contribution dataset with --scores-key.")
        shape = f[key].shape
        if len(shape) != 3 or shape[2] != 4 or shape[0] == 0 or f[SEQUENCE_KEY].shape != shape:
            raise InputError(f"datasets {key!r} {shape} and {SEQUENCE_KEY!r} {f[SEQUENCE_KEY].shape} must both be "
                             "(N, L, 4) with N > 0.", path=path,
                             fix="Write the score file with `bpnetz shap`; it stores (loci, positions, bases).")
        start, end = central_window(shape[1], window)
        hypothetical = np.asarray(f[key][:, start:end, :], dtype=np.float32)
        one_hot = np.asarray(f[SEQUENCE_KEY][:, start:end, :], dtype=np.float32)
        chroms = starts = None
        if all(k in f for k in COORD_KEYS):
            chroms = [c.decode() if isinstance(c, bytes) else str(c) for c in f["coords_chrom"][:]]
            centre = (np.asarray(f["coords_start"][:], dtype=np.int64)
                      + np.asarray(f["coords_end"][:], dtype=np.int64)) // 2
            if len(chroms) != shape[0] or len(centre) != shape[0]:
                raise InputError(f"coords_* have {len(chroms)} entries for {shape[0]} loci.", path=path,
                                 fix="Rewrite the score file; every locus needs one chrom, start and end.")
            starts = centre - shape[1] // 2 + start
    if not np.isin(one_hot, (0.0, 1.0)).all() or (one_hot.sum(axis=2) > 1).any():
        raise InputError(f"{SEQUENCE_KEY!r} is not one-hot (values other than 0/1, or several bases at a "
                         "position).", path=path, fix="Store one-hot sequences (A, C, G, T columns) in input_seqs.")
    if not np.isfinite(hypothetical).all():
        raise InputError(f"{key!r} contains NaN or infinite values.", path=path,
                         fix="Recompute the contribution scores; they must be finite.")
    return ScoreWindow(path, one_hot, hypothetical, start, chroms, starts)


# ------------------------------------------------------------------------------------------------ patterns

@dataclass
class Seqlets:
    """Seqlet coordinates of a pattern: locus index and [start, end) within the modisco window, strand."""

    example_idx: np.ndarray
    start: np.ndarray
    end: np.ndarray
    is_revcomp: np.ndarray


@dataclass
class Pattern:
    """One tfmodisco-lite pattern: ``name`` like 'pos_patterns.pattern_0', matrices (L, 4) in ACGT order."""

    name: str
    cwm: np.ndarray
    hypothetical_cwm: np.ndarray
    pfm: np.ndarray
    n_seqlets: int
    seqlets: Seqlets = field(repr=False)

    def core(self, threshold: float = TRIM_THRESHOLD) -> tuple[int, int]:
        """[start, end) of the columns whose summed |CWM| reaches ``threshold`` × the maximum column."""
        score = np.abs(self.cwm).sum(axis=1)
        keep = np.flatnonzero(score >= threshold * score.max())
        return int(keep[0]), int(keep[-1]) + 1

    @property
    def consensus(self) -> str:
        start, end = self.core()
        return "".join(BASES[i] for i in self.pfm[start:end].argmax(axis=1))


def _pattern_index(name: str) -> int:
    try:
        return int(name.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 1 << 30


def load_patterns(modisco_h5: str | os.PathLike) -> list[Pattern]:
    """The top-level patterns of a tfmodisco-lite results file, positive metacluster first, in pattern order."""
    path = Path(modisco_h5)
    f = open_h5(path, "modisco results file",
                "Pass the modisco_results.h5 written by `bpnetz modisco` or `modisco motifs`.")
    patterns = []
    with f:
        if "metacluster_idx_to_submetacluster_results" in f:
            raise InputError("this is a results file of the original TF-MoDISco, not tfmodisco-lite.", path=path,
                             fix="Convert it with `modisco convert -i OLD.h5 -o NEW.h5`.")
        if not any(g in f for g in PATTERN_GROUPS) and "window_size" not in f.attrs:
            raise InputError(f"not a tfmodisco-lite results file (no {' or '.join(PATTERN_GROUPS)} group).",
                             path=path, fix="Pass the modisco_results.h5 written by `bpnetz modisco`.")
        for group in PATTERN_GROUPS:
            if group not in f:
                continue
            for name in sorted(f[group], key=_pattern_index):
                g = f[group][name]
                try:
                    seq = np.asarray(g["sequence"][:], dtype=np.float64)
                    s = g["seqlets"]
                    seqlets = Seqlets(*(np.asarray(s[k][:]) if k in s else np.zeros(0, dtype=int)
                                        for k in ("example_idx", "start", "end", "is_revcomp")))
                    patterns.append(Pattern(
                        name=f"{group}.{name}",
                        cwm=np.asarray(g["contrib_scores"][:], dtype=np.float64),
                        hypothetical_cwm=np.asarray(g["hypothetical_contribs"][:], dtype=np.float64),
                        pfm=seq / np.maximum(seq.sum(axis=1, keepdims=True), 1e-12),
                        n_seqlets=int(np.asarray(s["n_seqlets"][:]).ravel()[0]),
                        seqlets=seqlets))
                except KeyError as err:
                    raise InputError(f"pattern {group}/{name} lacks {err}.", path=path,
                                     fix="Pass an unmodified tfmodisco-lite results file.") from err
    return patterns


# ------------------------------------------------------------------------------------------ motif databases

@dataclass(frozen=True)
class TomtomMatch:
    """One database motif matched to a pattern by TOMTOM (memelite); q-value over the database, per pattern."""

    target: str
    p_value: float
    q_value: float


def tomtom_matches(patterns: Sequence[Pattern], database: Mapping[str, np.ndarray],
                   n_matches: int = 3) -> dict[str, list[TomtomMatch]]:
    """Best ``n_matches`` database motifs for each pattern's trimmed PFM, by TOMTOM p-value (Pearson columns)."""
    import warnings

    from memelite import tomtom
    from scipy.stats import false_discovery_control

    if not patterns:
        return {}
    names = list(database)
    queries = [np.ascontiguousarray(p.pfm[slice(*p.core())].T) for p in patterns]
    targets = [np.ascontiguousarray(database[n].T) for n in names]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="tomtom was given")  # the report notes small databases
        p_values = np.asarray(tomtom(queries, targets)[0], dtype=np.float64)
    result = {}
    for pattern, p in zip(patterns, p_values):
        p = np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)
        q = false_discovery_control(p)
        order = np.argsort(p, kind="stable")[:n_matches]
        result[pattern.name] = [TomtomMatch(names[i], float(p[i]), float(q[i])) for i in order]
    return result


# ------------------------------------------------------------------------------------------------------ logos

def _logo_png(matrix: np.ndarray, title: str) -> bytes:
    """PNG bytes of a sequence logo of an (L, 4) matrix (letter heights = values, negatives below the axis)."""
    import logomaker
    import pandas as pd
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 0.28 * len(matrix)), 2.2))
    ax = fig.add_subplot(111)
    logomaker.Logo(pd.DataFrame(matrix, columns=list(BASES)), ax=ax)
    ax.set_title(title, fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def pattern_logos(pattern: Pattern) -> dict[str, bytes]:
    """Logos of a pattern's informative core (± a few columns): CWM forward and reverse, and the IC logo."""
    start, end = pattern.core()
    lo, hi = max(0, start - LOGO_PAD), min(len(pattern.cwm), end + LOGO_PAD)
    cwm = pattern.cwm[lo:hi]
    return {
        "cwm_fwd": _logo_png(cwm, f"{pattern.name} CWM (+)"),
        "cwm_rev": _logo_png(reverse_complement_onehot(cwm), f"{pattern.name} CWM (-)"),
        "ic": _logo_png(ic_scaled(pattern.pfm[lo:hi]), f"{pattern.name} PFM (bits)"),
    }


# ---------------------------------------------------------------------------------------------------- report

@dataclass
class PatternSummary:
    """What the report and summary.json say about one pattern."""

    name: str
    n_seqlets: int
    length: int
    consensus: str
    logos: dict[str, str]
    tomtom: list[TomtomMatch]


@dataclass
class ModiscoSummary:
    """Outcome of :func:`run_modisco`."""

    scores: str
    scores_key: str
    output_dir: str
    n_loci: int
    window: int
    n_seqlets_in_patterns: int
    patterns: list[PatternSummary]
    files: dict[str, str]
    runtime_s: float
    motif_db: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        """A few lines for the terminal: one per pattern and a closing summary line."""
        lines = [f"  {p.name:<24} {p.n_seqlets:>6} seqlets  {p.consensus}"
                 + (f"  ~ {p.tomtom[0].target} (q={p.tomtom[0].q_value:.2g})" if p.tomtom else "")
                 for p in self.patterns]
        lines.append(f"modisco: {len(self.patterns)} patterns from {self.n_loci} loci × {self.window} bp "
                     f"({self.n_seqlets_in_patterns} seqlets) in {self.runtime_s:.1f} s -> {self.files['report']}")
        return "\n".join(lines)


def _report_html(summary: ModiscoSummary, logos: Mapping[str, Mapping[str, bytes]]) -> str:
    """A self-contained HTML page (logos as data URIs) listing every pattern."""
    esc = html.escape

    def img(png: bytes) -> str:
        return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    rows = []
    for p in summary.patterns:
        matches = "<br>".join(f"{esc(m.target)}<br><small>p={m.p_value:.2g}, q={m.q_value:.2g}</small>"
                              for m in p.tomtom) or ("no database given" if summary.motif_db is None else "-")
        rows.append(f"<tr><td><b>{esc(p.name)}</b><br>{esc(p.consensus)}</td><td>{p.n_seqlets}</td>"
                    f"<td>{img(logos[p.name]['cwm_fwd'])}<br>{img(logos[p.name]['cwm_rev'])}</td>"
                    f"<td>{img(logos[p.name]['ic'])}</td><td>{matches}</td></tr>")
    notes = "".join(f"<p class=note>{esc(n)}</p>" for n in summary.notes)
    db = esc(summary.motif_db) if summary.motif_db else "none"
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>bpnetz modisco report</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:6px;vertical-align:top;text-align:left}} img{{max-width:520px}}
.note{{color:#a60}}</style></head><body>
<h1>TF-MoDISco patterns</h1>
<p>Scores: {esc(summary.scores)} (dataset {esc(summary.scores_key)}), {summary.n_loci} loci, central
{summary.window} bp. {len(summary.patterns)} patterns, {summary.n_seqlets_in_patterns} seqlets in patterns.
Motif database: {db}.</p>{notes}
<table><tr><th>pattern</th><th>seqlets</th><th>CWM (forward / reverse)</th><th>PFM (information content)</th>
<th>TOMTOM matches</th></tr>
{''.join(rows) if rows else '<tr><td colspan=5>no patterns found</td></tr>'}
</table></body></html>
"""


# ------------------------------------------------------------------------------------------------------- run

def _seqlet_bed(patterns: Sequence[Pattern], scores: ScoreWindow) -> str:
    """BED6 lines of every seqlet in genome coordinates (name = pattern, strand from is_revcomp)."""
    lines = []
    for p in patterns:
        s = p.seqlets
        for i, a, b, rc in zip(s.example_idx, s.start, s.end, s.is_revcomp):
            origin = int(scores.starts[int(i)])
            lines.append(f"{scores.chroms[int(i)]}\t{origin + int(a)}\t{origin + int(b)}\t{p.name}\t0\t"
                         f"{'-' if rc else '+'}")
    return "".join(line + "\n" for line in lines)


def run_modisco(scores_h5: str | os.PathLike, output_dir: str | os.PathLike, *, scores_key: str = "hyp_scores",
                max_seqlets: int = 2000, window: int = 400, n_leiden_runs: int = 2, sliding_window: int = 20,
                seqlet_flank: int = 5, trim_size: int = 30, initial_flank: int = 10, final_flank: int = 0,
                motif_db: str | os.PathLike | None = None, n_matches: int = 3) -> ModiscoSummary:
    """Run tfmodisco-lite on a score file and write its h5, logos, MEME file, seqlet BED, report and summary.

    The knobs keep the meaning (and the defaults) of ``modisco motifs``: ``max_seqlets`` per metacluster,
    ``n_leiden_runs``, ``sliding_window`` (seqlet core size), ``seqlet_flank``, ``trim_size``,
    ``initial_flank`` and ``final_flank``.
    """
    t0 = time.perf_counter()
    for label, value in (("--max-seqlets", max_seqlets), ("--n-leiden-runs", n_leiden_runs),
                         ("--sliding-window", sliding_window), ("--trim-size", trim_size)):
        if value < 1:
            raise InputError(f"{label} must be at least 1, got {value}.")
    database = read_meme_motifs(motif_db) if motif_db is not None else None  # fail before the long run
    scores = load_score_window(scores_h5, key=scores_key, window=window)
    if scores.width < sliding_window + 2 * seqlet_flank:
        raise InputError(f"the window of {scores.width} bp is shorter than one seqlet "
                         f"({sliding_window} + 2 × {seqlet_flank} bp).", path=scores.path,
                         fix="Use a larger --window or longer scored sequences.")
    out = Path(output_dir)
    with output_directory(out, what="modisco output directory") as tmp:  # a rerun leaves no stale logo
        knobs = {"max_seqlets_per_metacluster": max_seqlets, "sliding_window_size": sliding_window,
                 "flank_size": seqlet_flank, "trim_to_window_size": trim_size, "initial_flank_to_add": initial_flank,
                 "final_flank_to_add": final_flank, "target_seqlet_fdr": 0.05, "n_leiden_runs": n_leiden_runs,
                 "verbose": False}
        return _modisco_into(tmp, out, scores, scores_key, database, motif_db, n_matches, t0, knobs)


def _modisco_into(tmp: Path, out: Path, scores: ScoreWindow, scores_key: str, database: Any,
                  motif_db: str | os.PathLike | None, n_matches: int, t0: float,
                  knobs: dict[str, Any]) -> ModiscoSummary:
    """Run tfmodisco-lite and write every output into ``tmp`` (paths recorded as under ``out``)."""
    import modiscolite

    print(f"modisco: {scores.n_loci} loci × {scores.width} bp from {scores.path} ({scores_key}); "
          f"max {knobs['max_seqlets_per_metacluster']} seqlets, {knobs['n_leiden_runs']} Leiden runs", flush=True)
    pos, neg = modiscolite.tfmodisco.TFMoDISco(one_hot=scores.one_hot, hypothetical_contribs=scores.hypothetical,
                                               **knobs)
    with h5_image_output(tmp / RESULTS_NAME) as image:  # h5py writing into a full disk can crash (bpnetz.files.h5)
        modiscolite.io.save_hdf5(image, pos, neg, scores.width)  # its File is closed when the call returns
    patterns = load_patterns(tmp / RESULTS_NAME)
    for p in patterns:
        safe_name(p.name, what="pattern name", source=out / RESULTS_NAME)
    matches, notes = _matches_and_notes(patterns, database, n_matches)
    logos, summaries = _write_logos(tmp, patterns, matches)
    files = _write_motif_files(tmp, out, patterns, scores)
    summary = ModiscoSummary(
        scores=str(scores.path), scores_key=scores_key, output_dir=str(out), n_loci=scores.n_loci,
        window=scores.width, n_seqlets_in_patterns=sum(p.n_seqlets for p in patterns), patterns=summaries,
        files=files, runtime_s=round(time.perf_counter() - t0, 2),
        motif_db=str(motif_db) if motif_db is not None else None, notes=notes)
    write_text(tmp / "report.html", _report_html(summary, logos))
    write_text(tmp / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _matches_and_notes(patterns: list[Pattern], database: Mapping[str, np.ndarray] | None, n_matches: int
                       ) -> tuple[dict[str, list[TomtomMatch]], list[str]]:
    """TOMTOM matches of each pattern in the motif database (when given) and the report's notes."""
    notes = []
    matches: dict[str, list[TomtomMatch]] = {}
    if database is not None:
        matches = tomtom_matches(patterns, database, n_matches)
        if len(database) < 25:
            notes.append(f"The motif database has only {len(database)} motifs; TOMTOM's p-values use the "
                         "database columns as background and are unreliable with fewer than about 25.")
    if not patterns:
        notes.append("tfmodisco-lite found no patterns (too few seqlets above its null, or fewer than 100 in "
                     "a metacluster).")
    return matches, notes


def _write_logos(tmp: Path, patterns: list[Any], matches: dict[str, list[TomtomMatch]]
                 ) -> tuple[dict[str, dict[str, bytes]], list[PatternSummary]]:
    """Each pattern's logo PNGs under ``tmp/logos``; returns the logos and the pattern summaries."""
    from tqdm.auto import tqdm

    (tmp / "logos").mkdir(exist_ok=True)
    logos, summaries = {}, []
    for p in tqdm(patterns, desc="logos", unit="pattern", disable=None):
        logos[p.name] = pattern_logos(p)
        files = {}
        for kind, png in logos[p.name].items():
            rel = f"logos/{p.name}.{kind}.png"
            _write_bytes(tmp / rel, png)
            files[kind] = rel
        summaries.append(PatternSummary(p.name, p.n_seqlets, len(p.pfm), p.consensus, files,
                                        matches.get(p.name, [])))
    return logos, summaries


def _write_motif_files(tmp: Path, out: Path, patterns: list[Pattern], scores: ScoreWindow) -> dict[str, str]:
    """patterns.meme (each pattern's core PFM) and, with coordinates, seqlets.bed, written into ``tmp``; returns
    every output's path as it will be under ``out``."""
    files = {"results": str(out / RESULTS_NAME), "report": str(out / "report.html"),
             "meme": str(out / "patterns.meme"), "summary": str(out / "summary.json")}
    write_text(tmp / "patterns.meme", format_meme({p.name: p.pfm[slice(*p.core())] for p in patterns},
                                                   {p.name: p.n_seqlets for p in patterns}))
    if scores.chroms is not None:
        files["seqlets_bed"] = str(out / "seqlets.bed")
        write_text(tmp / "seqlets.bed", _seqlet_bed(patterns, scores))
    return files
