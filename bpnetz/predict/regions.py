"""Prediction beyond peaks: tile regions (``--regions regions.bed``) or whole chromosomes (``--tile CHROM``)
into model windows, read their sequences straight from the FASTA (and their bias inputs from the controls,
:mod:`bpnetz.build.controls`), predict them and stream the predicted counts into one bigWig per track.

Output windows of ``output_len`` tile each region (overlapping regions are merged first) and are centred on it:
the tiling overhangs both ends of the region by the same amount (±1). Each output window starting at ``o`` has
its summit at ``o + output_len // 2`` and, by the store's window convention, its input sequence starts at
``summit − input_len // 2``. Sequence past a chromosome's ends is N (all-zero one-hot).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bpnetz.build.controls import open_controls, region_bias
from bpnetz.errors import InputError
from bpnetz.files.atomic import atomic_output
from bpnetz.genome import sequence
from bpnetz.genome.bigwig import locus_segments
from bpnetz.genome.fasta import fasta_lengths, fasta_windows, open_fasta
from bpnetz.genome.intervals import merge_intervals, read_bed
from bpnetz.genome.sequence import N_CODE, encode
from bpnetz.model.contract import TrackGroups
from bpnetz.predict import metrics as M
from bpnetz.predict.inference import PredictFn, Window, predict_batch, window_predictions
from bpnetz.store.schema import StoreLayout

Region = tuple[str, int, int]
#: windows read from the FASTA and bigWigs at once.
REGION_CHUNK = 4096


@dataclass(frozen=True)
class Windows:
    """Model windows: chromosome, output-window start and input-window start (genomic, 0-based) per window."""

    chrom: np.ndarray
    out_start: np.ndarray
    in_start: np.ndarray
    input_len: int
    output_len: int

    def __len__(self) -> int:
        return len(self.chrom)

    @property
    def summit(self) -> np.ndarray:
        return self.out_start + self.output_len // 2


def read_regions_bed(path: str | Path) -> list[Region]:
    """(chrom, start, end) of each interval of a BED file (extra columns ignored), for ``--regions``."""
    bed = read_bed(path, "regions BED file")
    empty = np.flatnonzero(bed.end <= bed.start)
    if len(empty):
        raise InputError(f"line {bed.line[empty[0]]} has an empty interval ({bed.start[empty[0]]}-"
                         f"{bed.end[empty[0]]}).", path=path, fix="Each region needs start < end.")
    if not len(bed):
        raise InputError("the regions file has no intervals.", path=path, fix="Add at least one BED line.")
    return [(str(c), int(lo), int(hi)) for c, lo, hi in zip(bed.chrom, bed.start, bed.end, strict=True)]


def chromosome_regions(chroms: Sequence[str], chrom_sizes: Mapping[str, int]) -> list[Region]:
    """Whole chromosomes as regions (``--tile CHROM``)."""
    missing = [c for c in chroms if c not in chrom_sizes]
    if missing:
        raise InputError(f"chromosomes {', '.join(missing)} are not in the chromosome sizes.",
                         fix="Name chromosomes exactly as in the chromosome sizes file.")
    return [(c, 0, int(chrom_sizes[c])) for c in chroms]


def _merged(regions: Sequence[Region], chrom_sizes: Mapping[str, int]) -> list[Region]:
    """Regions clipped to their chromosome, merged where they overlap, in chromosome-size order."""
    unknown = sorted({c for c, _, _ in regions} - set(chrom_sizes))
    if unknown:
        raise InputError(f"regions on chromosomes {', '.join(unknown[:5])} that are not in the chromosome sizes.",
                         fix="Use the chromosome sizes of the genome the regions come from.")
    merged: list[Region] = []
    for chrom, size in chrom_sizes.items():
        rows = [(max(0, lo), min(int(size), hi)) for c, lo, hi in regions if c == chrom]
        rows = [(lo, hi) for lo, hi in rows if hi > lo]
        if rows:
            starts, ends = merge_intervals(*np.asarray(rows, dtype=np.int64).T)
            merged += [(chrom, int(lo), int(hi)) for lo, hi in zip(starts, ends, strict=True)]
    return merged


def tile_regions(regions: Sequence[Region], chrom_sizes: Mapping[str, int], input_len: int,
                 output_len: int) -> Windows:
    """Windows whose output windows tile every (merged) region, centred on it, in genome order."""
    chroms: list[str] = []
    out_starts: list[np.ndarray] = []
    for chrom, start, end in _merged(regions, chrom_sizes):
        n = -(-(end - start) // output_len)
        first = start - (n * output_len - (end - start)) // 2
        out_starts.append(first + output_len * np.arange(n, dtype=np.int64))
        chroms += [chrom] * n
    if not chroms:
        raise InputError("no region overlaps its chromosome.", fix="Check the regions' coordinates.")
    out_start = np.concatenate(out_starts)
    in_start = out_start + output_len // 2 - input_len // 2
    return Windows(np.asarray(chroms, dtype=object), out_start, in_start, input_len, output_len)


def read_sequences(fasta: str | Path, windows: Windows) -> np.ndarray:
    """Base codes (N, input_len) uint8 of every window's input sequence; N (4) past the chromosome ends."""
    genome = open_fasta(fasta)
    lengths = fasta_lengths(genome)
    unknown = sorted(set(windows.chrom) - set(lengths))
    if unknown:
        raise InputError(f"chromosome {unknown[0]} is not in the reference genome.", path=fasta,
                         fix="Use the FASTA of the genome the regions and chromosome sizes describe.")
    size = np.array([lengths[c] for c in windows.chrom], dtype=np.int64)
    start, end = windows.in_start, windows.in_start + windows.input_len
    inside = (start >= 0) & (end <= size)
    codes = np.full((len(windows), windows.input_len), N_CODE, dtype=np.uint8)
    with genome:
        codes[inside] = fasta_windows(genome, windows.chrom[inside], start[inside], windows.input_len)
        for i in np.flatnonzero(~inside):  # at most the ends of each region
            lo, hi = max(0, int(start[i])), min(int(size[i]), int(end[i]))
            if hi > lo:
                codes[i, lo - start[i]:hi - start[i]] = encode(genome[str(windows.chrom[i])][lo:hi])
    return codes


@contextlib.contextmanager
def track_bigwig_writers(path_template: str, chrom_sizes: Mapping[str, int],
                         n_tracks: int) -> Iterator[list[Any]]:
    """One open bigWig per track (header = every chromosome of ``chrom_sizes``), written atomically."""
    import pyBigWig

    with contextlib.ExitStack() as stack:
        handles = []
        for i in range(n_tracks):
            tmp = stack.enter_context(atomic_output(path_template.format(i=i)))
            handle = pyBigWig.open(str(tmp), "w")
            stack.callback(handle.close)  # closed before the rename (callbacks run last-in, first-out)
            handle.addHeader([(str(c), int(s)) for c, s in chrom_sizes.items()])
            handles.append(handle)
        yield handles


def _take(windows: Windows, index: np.ndarray) -> Windows:
    return replace(windows, chrom=windows.chrom[index], out_start=windows.out_start[index],
                   in_start=windows.in_start[index])


def model_windows(tiles: Windows, output_len: int) -> Windows:
    """The model's full output windows around tiles (tiles may be the cropped ``output_window_size``)."""
    return replace(tiles, out_start=tiles.summit - output_len // 2, output_len=output_len)


def predict_regions(predict_fn: PredictFn, layout: StoreLayout, tiles: Windows, fasta: str | Path,
                    chrom_sizes: Mapping[str, int], path_template: str, groups: M.TaskTracks, window: Window, *,
                    batch_size: int, reverse_complement_average: bool, set_bias_as_zero: bool, use_bias: bool,
                    progress: bool) -> list[Path]:
    """Predict every tile and stream the predicted counts into one bigWig per track, in genome order.

    ``tiles`` have the evaluated window's length (:func:`bpnetz.predict.regions.tile_regions` with
    ``window.size``); each is the centre crop of the model's output window around the same summit. Overlapping
    tiles (at the ends of nearby regions) are split at the midpoint between their centres, as for peaks.
    """
    order, seg_start, seg_end = locus_segments(tiles.chrom, tiles.out_start, window.size, chrom_sizes)
    keep = seg_end > seg_start
    order, seg_start, seg_end = order[keep], seg_start[keep], seg_end[keep]
    owner = TrackGroups.from_lists(groups).owner()
    bar = tqdm(total=-(-len(order) // batch_size), desc="predicting regions", unit="batch", disable=not progress)
    controls = open_controls(layout, sorted(set(tiles.chrom))) if use_bias else contextlib.nullcontext()
    with track_bigwig_writers(path_template, chrom_sizes, layout.n_tracks) as handles, controls as bigwigs:
        for lo in range(0, len(order), REGION_CHUNK):
            chunk = _take(tiles, order[lo:lo + REGION_CHUNK])
            onehot = sequence.one_hot(read_sequences(fasta, chunk))
            windows = model_windows(chunk, layout.output_len)
            bias = region_bias(layout, bigwigs, windows.chrom, windows.out_start) if use_bias else {}
            for b in range(0, len(chunk), batch_size):
                inputs = {"sequence": onehot[b:b + batch_size], **{k: v[b:b + batch_size] for k, v in bias.items()}}
                logits, logcounts = predict_batch(predict_fn, inputs, layout,
                                                  reverse_complement_average=reverse_complement_average,
                                                  set_bias_as_zero=set_bias_as_zero)
                probs, window_lc = window_predictions(logits, logcounts, groups, window)
                counts = (probs * np.exp(window_lc[:, owner])[:, None, :]).astype(np.float64)
                for k in range(len(counts)):
                    j = lo + b + k
                    first = int(seg_start[j] - chunk.out_start[b + k])
                    values = counts[k, first:first + int(seg_end[j] - seg_start[j])]
                    for t, handle in enumerate(handles):
                        handle.addEntries(str(chunk.chrom[b + k]), int(seg_start[j]),
                                          values=np.ascontiguousarray(values[:, t]), span=1, step=1)
                bar.update()
    bar.close()
    return [Path(path_template.format(i=i)) for i in range(layout.n_tracks)]
