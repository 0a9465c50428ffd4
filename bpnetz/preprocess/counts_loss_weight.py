"""The suggested counts loss weight λ (``loss_weights[1]`` of bpnet_params.json).

BPNet paper (Avsec et al. 2021, methods): with λ ≈ n_obs / 2, n_obs the mean total count of a profile, the
profile and counts losses get roughly equal weight; ``alpha`` scales it (below 1 favours the profile). The
reference tool computes

    n_obs = mean over (peak, signal track) of the track's total counts in [summit - w//2, summit + w//2)
    λ = alpha · n_obs        (joint multinomial over both strands: the two halves add up)
    λ = alpha · n_obs / 2    (with --orig-multi-loss, one multinomial per strand)

with w = ``peak_width`` (1000). We keep that formula and print the value unrounded (Python's shortest repr of
the float), as the reference does. Two fixes: each task's tracks are summed over that task's own peaks (the
reference crosses every track with every task's peaks, which matters only with several tasks), and windows
that run past a chromosome end are clipped instead of the peak being dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bpnetz.config import InputData
from bpnetz.errors import InputError
from bpnetz.genome.bigwig import open_bigwig
from bpnetz.genome.intervals import read_narrowpeak
from bpnetz.store import schema


def counts_loss_weight(total_counts_per_peak_per_track: np.ndarray | Sequence[np.ndarray], alpha: float = 1.0,
                       *, orig_multi_loss: bool = False) -> float:
    """alpha × the mean of the per-(peak, track) totals (halved with ``orig_multi_loss``); NaN entries skipped.

    Accepts one array of any shape, or a sequence of arrays (e.g. one (peaks, tracks) array per task).
    """
    arrays = ([total_counts_per_peak_per_track] if isinstance(total_counts_per_peak_per_track, np.ndarray)
              else list(total_counts_per_peak_per_track))
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.empty(0)
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("no peak totals to average")
    weight = alpha * float(values.mean())
    return weight / 2.0 if orig_multi_loss else weight


def _peak_totals(bigwig_path: str, chroms: np.ndarray, summits: np.ndarray, peak_width: int) -> np.ndarray:
    """Total signal of one bigWig in [summit - w//2, summit + w//2) per peak, clipped to the chromosome;
    NaN for peaks on chromosomes the bigWig does not have."""
    bigwig = open_bigwig(bigwig_path)
    lengths = bigwig.chroms()
    totals = np.full(len(summits), np.nan)
    try:
        for i in tqdm(range(len(summits)), desc=f"sum {Path(bigwig_path).name}", unit="peak", leave=False,
                      disable=None):
            chrom = chroms[i]
            if chrom not in lengths:
                continue
            start = max(int(summits[i]) - peak_width // 2, 0)
            end = min(int(summits[i]) + peak_width // 2, lengths[chrom])
            if end > start:
                total = bigwig.stats(chrom, start, end, type="sum", exact=True)[0]
                totals[i] = 0.0 if total is None else total
            else:
                totals[i] = 0.0
    finally:
        bigwig.close()
    return totals


def counts_loss_weight_from_bigwigs(input_data: InputData, peak_width: int = 1000, alpha: float = 1.0,
                                    default: float = 100.0, *, orig_multi_loss: bool = False) -> float:
    """The weight from input_data.json's peaks and signal bigWigs; ``default`` when no peak has a count."""
    per_task = []
    for task in input_data.tasks.values():
        peaks = read_narrowpeak(task.loci.source)
        if len(peaks):
            per_task.append(np.stack([_peak_totals(bw, peaks.chrom, peaks.summit, peak_width)
                                      for bw in task.signal.source], axis=1))
    try:
        return counts_loss_weight(per_task, alpha, orig_multi_loss=orig_multi_loss)
    except ValueError:
        return float(default)


def counts_loss_weight_from_store(path: str | Path, alpha: float = 1.0, peak_width: int = 1000, *,
                                  orig_multi_loss: bool = False, default: float = 100.0) -> float:
    """The weight from a store: peak loci only, each task's tracks summed over the central ``peak_width``
    positions of the stored signal rows (centred on the summit); ``default`` when the store has no peaks."""
    group = schema.open_group(path)
    layout = schema.layout(group)
    centre = layout.max_jitter + layout.output_len // 2  # row index of the summit
    lo, hi = centre - peak_width // 2, centre + peak_width // 2
    if lo < 0 or hi > layout.profile_len:
        raise InputError(f"--peak-width {peak_width} is wider than the stored signal rows ({layout.profile_len} "
                         f"positions around each summit).", path=path,
                         fix=f"Use --peak-width {layout.profile_len} or less, or compute it from the bigWigs "
                             "with --input-data.")
    kind = np.asarray(group["kind"][:])
    task = np.asarray(group["task"][:])
    signal = group["signal"]
    totals: list[np.ndarray] = []
    for block_start in tqdm(range(0, len(kind), schema.SHARD_LOCI), desc="sum peak signal", unit="block",
                            disable=None):
        block_stop = min(block_start + schema.SHARD_LOCI, len(kind))
        peaks = np.flatnonzero(kind[block_start:block_stop] == schema.KIND_PEAK)
        if peaks.size == 0:
            continue
        rows = np.asarray(signal[block_start:block_stop, lo:hi, :], dtype=np.float64)[peaks]
        sums = np.nansum(rows, axis=1)  # (peaks, tracks)
        for t in range(len(layout.tasks)):
            mine = task[block_start:block_stop][peaks] == t
            totals.append(sums[mine][:, layout.task_tracks(t)])
    try:
        return counts_loss_weight(totals, alpha, orig_multi_loss=orig_multi_loss)
    except ValueError:
        return float(default)
