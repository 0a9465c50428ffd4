"""Contribution score files: the reference's ``counts_scores.h5`` / ``profile_scores.h5``, the scored loci as
narrowPeak, and bigWigs of the projected scores.

Score h5 (read by tfmodisco-lite's ``modisco motifs --h5py``, which takes ``hyp_scores`` and ``input_seqs`` and
cuts its window around their centre)::

    coords_chrom  (N,)       variable-length UTF-8 chromosome names, never truncated (the reference cut them at 8)
    coords_start  (N,)       int64 0-based start of the scored input window
    coords_end    (N,)       int64 end of the window (coords_start + L)
    hyp_scores    (N, L, 4)  float32 hypothetical contributions (A, C, G, T)
    input_seqs    (N, L, 4)  int8 one-hot input sequences (N bases all zero), gzip-compressed

The scored loci go to ``peaks_valid_scores.bed`` (the reference's name) as narrowPeak rows over the scored
windows with the summit at the window centre, so the file can be fed back as ``--bed-file``. BigWigs hold, per base,
the projected contribution summed over the four bases; where windows overlap, each base takes the value of the
nearest window centre (:func:`bpnetz.genome.bigwig.write_track_bigwigs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bpnetz.files.atomic import atomic_output
from bpnetz.files.h5 import h5_output
from bpnetz.genome.bigwig import write_track_bigwigs

SCORE_FILES = {"counts": "counts_scores.h5", "profile": "profile_scores.h5"}
BIGWIG_FILES = {"counts": "counts_scores.bw", "profile": "profile_scores.bw"}
SCORED_BED = "peaks_valid_scores.bed"


def write_score_h5(path: str | Path, chrom: Sequence[str], start: np.ndarray, end: np.ndarray,
                   hyp_scores: np.ndarray, input_seqs: np.ndarray) -> Path:
    """Write one target's hypothetical contributions and the one-hot inputs with their coordinates (atomic)."""
    import h5py

    hyp_scores, input_seqs = np.asarray(hyp_scores), np.asarray(input_seqs)
    _check_rows(chrom, start, end, hyp_scores=hyp_scores, input_seqs=input_seqs)
    if hyp_scores.ndim != 3 or hyp_scores.shape[2] != 4 or hyp_scores.shape != input_seqs.shape:
        raise ValueError(f"hyp_scores {hyp_scores.shape} and input_seqs {input_seqs.shape} must both be (N, L, 4)")
    path = Path(path)
    with h5_output(path) as h5:
        h5.create_dataset("coords_chrom", data=np.asarray([str(c) for c in chrom], dtype=object),
                          dtype=h5py.string_dtype(encoding="utf-8"))
        h5.create_dataset("coords_start", data=np.asarray(start, dtype=np.int64))
        h5.create_dataset("coords_end", data=np.asarray(end, dtype=np.int64))
        h5.create_dataset("hyp_scores", data=hyp_scores.astype(np.float32, copy=False))
        h5.create_dataset("input_seqs", data=input_seqs.astype(np.int8), compression="gzip", shuffle=True)
    return path


def write_scored_bed(path: str | Path, chrom: Sequence[str], start: np.ndarray, end: np.ndarray,
                     names: Sequence[str] | None = None) -> Path:
    """Write the scored windows as narrowPeak (name, score 0, strand '.', -1 values, summit at the centre)."""
    _check_rows(chrom, start, end)
    start, end = np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)
    names = names if names is not None else [f"locus_{i}" for i in range(len(chrom))]
    lines = [f"{c}\t{s}\t{e}\t{n}\t0\t.\t-1\t-1\t-1\t{(e - s) // 2}\n"
             for c, s, e, n in zip(chrom, start.tolist(), end.tolist(), names, strict=True)]
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text("".join(lines))
    return path


def write_score_bigwig(path: str | Path, chrom_sizes: Mapping[str, int], chrom: Sequence[str], start: np.ndarray,
                       values: np.ndarray) -> Path:
    """Write per-base scores (N, L) of windows starting at ``start`` as one bigWig (atomic).

    Overlapping windows are split at the midpoint between their centres; values past chromosome ends are dropped.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be (N, L) per-base scores, got {values.shape}")
    template = str(path).replace("{", "{{").replace("}", "}}")
    return write_track_bigwigs(template, chrom_sizes, chrom, start, values[:, :, None], ["scores"])[0]


def write_score_files(out_dir: str | Path, chrom: Sequence[str], start: np.ndarray, end: np.ndarray,
                      sequences: np.ndarray, scores: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                      names: Sequence[str] | None = None,
                      chrom_sizes: Mapping[str, int] | None = None) -> dict[str, Path]:
    """All outputs of a SHAP run: one h5 per target, the scored loci BED, and bigWigs when ``chrom_sizes`` is given.

    ``scores`` is :func:`bpnetz.shap.deeplift.deepshap`'s result ({target: (hypothetical, projected)}).
    Returns {file kind: path}, kinds ``counts_h5``, ``profile_h5``, ``bed``, ``counts_bw``, ``profile_bw``.
    """
    out = Path(out_dir)
    files = {}
    for target, (hypothetical, projected) in scores.items():
        files[f"{target}_h5"] = write_score_h5(out / SCORE_FILES[target], chrom, start, end, hypothetical,
                                               sequences)
        if chrom_sizes is not None:
            files[f"{target}_bw"] = write_score_bigwig(out / BIGWIG_FILES[target], chrom_sizes, chrom, start,
                                                       projected.sum(axis=-1))
    files["bed"] = write_scored_bed(out / SCORED_BED, chrom, start, end, names)
    return files


def _check_rows(chrom: Sequence[str], start: np.ndarray, end: np.ndarray, **arrays: np.ndarray) -> None:
    """Every per-locus array has one row per chromosome name."""
    for name, values in {"start": start, "end": end, **arrays}.items():
        if len(values) != len(chrom):
            raise ValueError(f"{name} has {len(values)} rows for {len(chrom)} loci")
