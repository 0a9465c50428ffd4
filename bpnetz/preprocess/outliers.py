"""Outlier peak removal by the reference's quantile rule, with the reference's defects fixed.

For one task of input_data.json: every peak gets a window of ``sequence_len`` centred on its summit
(``[summit - sequence_len//2, summit + sequence_len//2)``) and a total = the sum over the task's signal bigWigs
of all counts in that window. With ``v`` = the observed total nearest to the ``quantile`` quantile of the totals
(the reference's rule), peaks whose total exceeds ``v × scale_factor`` are outliers and removed. The reference
averages the tracks instead of summing them; the threshold scales by the same factor, so the same peaks go.

Before that, as in the reference, peaks are removed when their chromosome is not among ``chroms``, when their
window crosses a chromosome end, when they duplicate an earlier row exactly, and when their window overlaps a
blacklist region. Fixed defects: a blacklist region lying inside a window (touching neither window end) also
removes the peak; the output is sorted by position (chromosome in chrom.sizes order, then start) instead of by
total; every original column is kept; and the log (every removed peak with its reason) goes to
``outliers.log`` in the output's directory, not the current directory.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpnetz.config import InputData, TaskSpec
from bpnetz.errors import InputError
from bpnetz.files.atomic import write_text
from bpnetz.genome.intervals import (
    SCORE_COLUMN,
    BedRecords,
    TabFields,
    merge_intervals,
    overlaps_any,
    read_chrom_sizes,
    read_intervals,
    read_narrowpeak,
    sort_by_position,
)

LOG_NAME = "outliers.log"

REASON_CHROM = "chromosome not in --chroms (or not in the chrom sizes)"
REASON_EDGE = "window crosses a chromosome end"
REASON_DUPLICATE = "duplicate row"
REASON_BLACKLIST = "window overlaps a blacklist region"
REASON_OUTLIER = "outlier (total above threshold)"


@dataclass
class QuantileThreshold:
    """The reference's cut: the observed total nearest the quantile, times the scale factor."""

    quantile: float
    scale_factor: float
    quantile_value: float  # np.quantile of the totals (linear interpolation)
    nearest_total: float  # the observed total closest to it
    threshold: float  # nearest_total × scale_factor; totals above it are outliers


@dataclass
class OutlierResult:
    """The kept peaks (sorted by position), every removed peak with its reason, and the threshold used."""

    kept: BedRecords
    kept_totals: np.ndarray
    removed: list[tuple[str, str, str]] = field(default_factory=list)  # (file:line, locus, reason)
    threshold: QuantileThreshold | None = None
    n_input: int = 0
    output: Path | None = None
    log: Path | None = None
    seconds: float = 0.0

    def reasons(self) -> Counter:
        return Counter(reason.split(":")[0] for _, _, reason in self.removed)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {reason}" for reason, n in self.reasons().items()) or "none"
        cut = ""
        if self.threshold is not None:
            t = self.threshold
            cut = (f"; threshold {t.threshold:g} = {t.scale_factor:g} × {t.nearest_total:g} "
                   f"(total nearest the {t.quantile:g} quantile)")
        return (f"outliers: {self.n_input} peaks -> {len(self.kept)} kept; removed: {counts}{cut}; "
                f"wrote {self.output} and {self.log} in {self.seconds:.1f} s")


def quantile_threshold(totals: np.ndarray, quantile: float, scale_factor: float) -> QuantileThreshold:
    """The reference's outlier threshold over the peak totals."""
    if not 0 <= quantile <= 1:
        raise InputError(f"--quantile must be between 0 and 1, got {quantile}.")
    totals = np.asarray(totals, dtype=np.float64)
    value = float(np.quantile(totals, quantile))
    nearest = float(totals[np.argmin(np.abs(totals - value))])
    return QuantileThreshold(quantile, scale_factor, value, nearest, nearest * scale_factor)


def window_totals(bigwigs: Sequence[str | Path], chrom: np.ndarray, start: np.ndarray,
                  end: np.ndarray) -> np.ndarray:
    """Sum over the bigWigs of all values in each window (gaps count as 0)."""
    import pyBigWig
    from tqdm import tqdm

    totals = np.zeros(len(start), dtype=np.float64)
    for path in bigwigs:
        try:
            bw = pyBigWig.open(str(path))
        except RuntimeError:
            raise InputError("cannot open as a bigWig.", path=path, fix="Check the signal source.") from None
        with bw:
            lengths = bw.chroms()
            for i in tqdm(range(len(start)), desc=f"totals {Path(path).name}", unit="peaks", leave=False):
                c = chrom[i]
                if c not in lengths or end[i] > lengths[c]:
                    raise InputError(f"chromosome {c} is missing or shorter than {end[i]} in this bigWig.",
                                     path=path, fix="Use the chrom.sizes of the genome the bigWig was made "
                                     "for (the names must match).")
                totals[i] += np.nansum(bw.values(c, int(start[i]), int(end[i]), numpy=True))
    return totals


def _task(input_data: InputData, task: str) -> TaskSpec:
    if task not in input_data.tasks:
        raise InputError(f"task {task!r} is not in this file (tasks: {', '.join(input_data.tasks)}).",
                         path=input_data.path, fix="Pass --task with one of those keys.")
    spec = input_data.tasks[task]
    for key, paths in (("signal", spec.signal.source), ("loci", spec.loci.source)):
        for i, src in enumerate(paths):
            if not Path(src).is_file():
                raise InputError(f"key \"{task}\".{key}.source[{i}] names '{src}', which does not exist (relative "
                                 f"paths are taken from the current directory, {Path.cwd()}).",
                                 path=input_data.path, fix="Fix the path.")
    return spec


def _duplicates(peaks: BedRecords) -> np.ndarray:
    """Index of the first identical row for each row that repeats an earlier one, else -1."""
    first: dict[tuple[str, ...], int] = {}
    dup = np.full(len(peaks), -1, dtype=np.int64)
    for i, row in enumerate(peaks.fields):
        j = first.setdefault(tuple(row), i)
        if j != i:
            dup[i] = j
    return dup


def remove_outliers(input_data: str | Path, output_bed: str | Path, chrom_sizes: str | Path, *,
                    task: str = "0", chroms: Sequence[str] | None = None, sequence_len: int = 1000,
                    quantile: float = 0.99, scale_factor: float = 1.2, blacklist: str | Path | None = None,
                    global_sample_weight: float | None = None) -> OutlierResult:
    """Filter a task's peaks (see the module docstring) and write the kept ones and the log."""
    began = time.perf_counter()
    spec = _task(InputData.load(input_data, check_files=False), task)
    sizes = read_chrom_sizes(chrom_sizes)
    chroms = list(sizes) if chroms is None else list(chroms)
    missing = [c for c in chroms if c not in sizes]
    if missing:
        raise InputError(f"--chroms lists {', '.join(missing)}, which the chrom sizes file does not.",
                         path=chrom_sizes, fix="Use matching chromosome names.")
    peaks = read_narrowpeak(spec.loci.source)
    if not set(peaks.chrom) & set(sizes):
        raise InputError(f"no peak lies on a chromosome of the chrom sizes file (peaks are on "
                         f"{', '.join(sorted(set(peaks.chrom))[:5])}).", path=chrom_sizes,
                         fix="Use the chrom sizes of the genome the peaks were called on (names must match).")
    win_start, win_end, reason = _filter_reasons(peaks, sizes, chroms, sequence_len, blacklist)
    candidates = np.flatnonzero(reason == "")
    if len(candidates) == 0:
        raise InputError(f"no peak of task {task} is left after the chromosome, edge, duplicate and blacklist "
                         "filters.", path=input_data, fix="Check --chroms, --sequence-len and the blacklist.")
    totals = np.full(len(peaks), np.nan)
    totals[candidates] = window_totals(spec.signal.source, peaks.chrom[candidates], win_start[candidates],
                                       win_end[candidates])
    cut = quantile_threshold(totals[candidates], quantile, scale_factor)
    for i in candidates[totals[candidates] > cut.threshold]:
        reason[i] = f"{REASON_OUTLIER}: {totals[i]:g} > {cut.threshold:g}"
    keep = np.flatnonzero(reason == "")
    keep = keep[sort_by_position(peaks.chrom[keep], peaks.start[keep], list(sizes))]
    kept = peaks.subset(keep)
    if global_sample_weight is not None:
        rows = list(kept.fields)
        for row in rows:
            row[SCORE_COLUMN] = str(float(global_sample_weight))
        kept.fields = TabFields(["\t".join(row) for row in rows])
    removed = [(peaks.where(i), f"{peaks.chrom[i]}:{peaks.start[i]}-{peaks.end[i]} summit {peaks.summit[i]}",
                str(reason[i])) for i in np.flatnonzero(reason != "")]
    output = write_text(output_bed, "".join(line + "\n" for line in kept.fields.lines))
    result = OutlierResult(kept=kept, kept_totals=totals[keep], removed=removed, threshold=cut,
                           n_input=len(peaks), output=output, log=output.parent / LOG_NAME)
    result.seconds = time.perf_counter() - began
    params = {"input_data": str(input_data), "task": task, "chrom_sizes": str(chrom_sizes),
              "chroms": " ".join(chroms), "sequence_len": sequence_len, "quantile": quantile,
              "quantile_value_scale_factor": scale_factor, "blacklist": str(blacklist),
              "global_sample_weight": global_sample_weight, "output_bed": str(output)}
    write_text(result.log, _log_text(result, params))
    return result


def _filter_reasons(peaks: BedRecords, sizes: dict[str, int], chroms: list[str], sequence_len: int,
                    blacklist: str | Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each peak's window (start, end) and why it is left out before the quantile rule ("" when it is not):
    chromosome not selected, window past a chromosome end, duplicate of an earlier line, blacklist overlap."""
    half = sequence_len // 2
    win_start, win_end = peaks.summit - half, peaks.summit + half
    length = np.fromiter((sizes.get(c, 0) for c in peaks.chrom), dtype=np.int64, count=len(peaks))
    reason = np.full(len(peaks), "", dtype=object)
    reason[~np.isin(peaks.chrom, chroms)] = REASON_CHROM
    reason[(reason == "") & ((win_start < 0) | (win_end > length))] = REASON_EDGE
    dup = _duplicates(peaks)
    for i in np.flatnonzero((reason == "") & (dup >= 0)):
        if reason[dup[i]] == "":
            reason[i] = f"{REASON_DUPLICATE}: same as {peaks.where(dup[i])}"
    if blacklist is not None:
        regions = read_intervals(blacklist)
        for chrom, (s, e) in regions.items():
            on_chrom = (peaks.chrom == chrom) & (reason == "")
            hit = overlaps_any(win_start[on_chrom], win_end[on_chrom], merge_intervals(s, e))
            reason[np.flatnonzero(on_chrom)[hit]] = REASON_BLACKLIST
    return win_start, win_end, reason


def _log_text(result: OutlierResult, params: dict) -> str:
    """The log: parameters, the threshold, the summary, then one line per removed peak."""
    lines = [f"# {key}: {value}" for key, value in params.items()]
    if result.threshold is not None:
        t = result.threshold
        lines.append(f"# {t.quantile:g} quantile of totals: {t.quantile_value:g}; nearest observed total: "
                     f"{t.nearest_total:g}; threshold (x {t.scale_factor:g}): {t.threshold:g}")
    lines.append(f"# {result.summary()}")
    lines.append("source\tlocus\treason")
    lines += ["\t".join(row) for row in result.removed]
    return "\n".join(lines) + "\n"
