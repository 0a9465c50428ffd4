"""A bigWig reader in numpy for the builder: the values of a genomic span from the file's R-tree and data blocks.

Why not pyBigWig's ``values()`` in the build: it never releases the GIL (its extension does not even import
``PyEval_SaveThread``), so two block threads read one at a time, and it hands back float32 spans with NaN that the
builder then scanned several times per track (NaN to 0, whole-number and range checks, cast, sums). Here the
intervals of a block's spans come from one R-tree descent per chromosome and one inflate per data block
(ISA-L's when installed, else zlib's; both release the GIL), and a whole-numbered track is filled straight into its
stored dtype (:func:`windows_into`). On the 50,796-locus simulated build (4 count tracks, one thread, load ~12 on 2
cores) the block tasks took 11.8 CPU-s with pyBigWig and pyfaidx, 6.2 s with this reader and the direct FASTA reads;
read alone, this reader is not faster per span than pyBigWig (4 Mb: 10 vs 7.5 ms), the gain is the GIL and the float
passes. ISA-L's inflate then cut the 40k-locus benchmark's inflation from 0.98 to 0.56 CPU-s.
Measured alternatives: figwig reads 4,096 windows in 0.106 CPU-s against pyBigWig spans' 0.162 s, but needs numba
(15 s of compilation on first use in each process, i.e. in every build); pybigtools is not installed here (a new
compiled dependency for the same GIL-free inflation). :func:`bpnetz.genome.bigwig.bigwig_windows` (pyBigWig)
stays the independent reader of ``bpnetz store verify`` and the exactness tests.

Not exercised by the tests: a chromosome B+ tree of more than one level (libBigWig, which writes the test files,
puts every chromosome in one leaf; UCSC's tools split trees of more than 256 chromosomes); the traversal follows
the format's non-leaf items.

The format (UCSC's bigWig, version 3 and 4; little-endian files): a 64-byte header, a B+ tree of chromosome names
and ids, an R-tree whose leaves give the offset and size of each data block, and data blocks (zlib-compressed when
the header's ``uncompressBufSize`` is non-zero) of sections: a 24-byte header (chromId, chromStart, chromEnd,
itemStep, itemSpan, type, reserved, itemCount) then records of type 1 (bedGraph: start, end, value), 2 (varStep:
start, value; span itemSpan) or 3 (fixedStep: value; start chromStart + i · itemStep). :func:`open_reader` returns
None for a file it does not read (big-endian), and the caller uses pyBigWig.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from bpnetz.errors import InputError
from bpnetz.genome.windows import gather, windows_by_span

try:  # ISA-L's inflate: 1.6-1.8x zlib's on bigWig data blocks (537 blocks, 5.9 MB: 33 vs 53-58 ms, one thread)
    from isal.isal_zlib import decompress as inflate
    from isal.isal_zlib import error as InflateError
except ImportError:  # pragma: no cover - isal is a dependency; the standard library reads the same bytes
    from zlib import decompress as inflate
    from zlib import error as InflateError

MAGIC = 0x888FFC26
_CHROM_TREE_MAGIC = 0x78CA8C91
_RTREE_MAGIC = 0x2468ACE0
_LEAF = np.dtype([("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"), ("offset", "<u8"), ("size", "<u8")])
_NODE = np.dtype([("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"), ("offset", "<u8")])
#: windows closer than this share a span in :func:`windows_into`. A span's fixed cost is ~10 numpy calls (~50 µs);
#: the bases of a gap cost only untouched zeroed memory plus the data blocks lying wholly inside it (a simulated
#: count block spans ~28 kb), so the gap is a couple of blocks: 40,000 clustered loci made 150 spans per 4,096-locus
#: block at pyBigWig's 16 kb (9.1 CPU-s for the build) and one span per 4 Mb at 1 Mb (7.7 CPU-s), while 2,000 loci
#: spread over 105 Mb decoded the whole genome at 1 Mb.
SPAN_GAP = 1 << 16
_RECORDS = {1: np.dtype([("start", "<u4"), ("end", "<u4"), ("value", "<f4")]),
            2: np.dtype([("start", "<u4"), ("value", "<f4")]), 3: np.dtype([("value", "<f4")])}


class BigWigReader:
    """Values of spans of one bigWig (see the module docstring). Not shared between threads: one per task."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        head = self._read(0, 64)
        (_, _, _, chrom_tree, _, index, _, _, _, _, self._uncompress, _) = struct.unpack("<IHHQQQHHQQIQ", head)
        self._chroms = self._chrom_tree(chrom_tree)
        self._index_root = index + 48

    def chroms(self) -> dict[str, int]:
        """Chromosome name -> length (as pyBigWig's ``chroms()``)."""
        return {name: length for name, (_, length) in self._chroms.items()}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> BigWigReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, offset: int, size: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise OSError(f"{self.path}: {size} bytes at offset {offset} lie past the end of the file")
        return data

    def _chrom_tree(self, offset: int) -> dict[str, tuple[int, int]]:
        """Chromosome name -> (id, length), from the B+ tree."""
        magic, _, key_size, _, _ = struct.unpack("<IIIIQ", self._read(offset, 24))
        if magic != _CHROM_TREE_MAGIC:
            raise OSError(f"{self.path}: no chromosome tree at offset {offset}")
        chroms: dict[str, tuple[int, int]] = {}
        todo = [offset + 32]
        while todo:
            node = todo.pop()
            is_leaf, _, count = struct.unpack("<BBH", self._read(node, 4))
            width = key_size + 8
            items = self._read(node + 4, count * width)
            for i in range(count):
                key = items[i * width:i * width + key_size].rstrip(b"\0").decode()
                if is_leaf:
                    chroms[key] = struct.unpack_from("<II", items, i * width + key_size)
                else:
                    todo.append(struct.unpack_from("<Q", items, i * width + key_size)[0])
        return chroms

    def _leaves(self, chrom_id: int, start: int, end: int) -> np.ndarray:
        """The R-tree leaf items (extent, offset, size) overlapping [start, end) on ``chrom_id``, by extent start
        (what :meth:`span_intervals`' binary searches need, whatever order the file wrote the blocks in)."""
        found, todo = [], [self._index_root]
        while todo:
            node = todo.pop()
            is_leaf, _, count = struct.unpack("<BBH", self._read(node, 4))
            dtype = _LEAF if is_leaf else _NODE
            items = np.frombuffer(self._read(node + 4, count * dtype.itemsize), dtype=dtype)
            after_start = (items["c1"] > chrom_id) | ((items["c1"] == chrom_id) & (items["b1"] > start))
            before_end = (items["c0"] < chrom_id) | ((items["c0"] == chrom_id) & (items["b0"] < end))
            hit = items[after_start & before_end]
            if is_leaf:
                found.append(hit)
            else:
                todo += hit["offset"].tolist()[::-1]
        leaves = np.concatenate(found) if found else np.zeros(0, _LEAF)
        return leaves[np.lexsort((leaves["b0"], leaves["c0"]))]

    def span_intervals(self, chrom: str, spans: list[tuple[int, int]], clip: bool = False
                       ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(starts, ends, values) of the stored intervals overlapping each span [lo, hi) of ``chrom`` (spans
        ascending and disjoint; starts and ends int64, values float32, each a fresh array): one R-tree descent for
        all of them, each data block decoded once (a block shared by neighbouring spans is kept until the spans
        pass it). With ``clip``, the intervals are cut to the span."""
        chrom_id = self._chroms[chrom][0]
        leaves = self._leaves(chrom_id, spans[0][0], spans[-1][1]) if spans else np.zeros(0, _LEAF)
        first = np.where(leaves["c0"] == chrom_id, leaves["b0"], 0).astype(np.int64)
        last = np.where(leaves["c1"] == chrom_id, leaves["b1"], np.iinfo(np.int64).max).astype(np.int64)
        last = np.maximum.accumulate(last) if len(last) else last
        decoded: dict[int, list] = {}
        for lo, hi in spans:
            k0, k1 = int(np.searchsorted(last, lo, side="right")), int(np.searchsorted(first, hi, side="left"))
            for k in [k for k in decoded if k < k0]:
                del decoded[k]
            parts = []
            for k in range(k0, k1):
                if k not in decoded:
                    decoded[k] = self._decode(int(leaves["offset"][k]), int(leaves["size"][k]), chrom_id, chrom)
                parts += decoded[k]
            yield _overlapping(parts, lo, hi, clip)

    def _decode(self, offset: int, size: int, chrom_id: int, chrom: str) -> list:
        """The (starts, ends, values) sections of one data block on ``chrom_id``."""
        try:
            data = self._read(offset, size)
            return _sections(inflate(data, 15, self._uncompress) if self._uncompress else data, chrom_id)
        except (OSError, ValueError, InflateError, struct.error) as err:
            raise InputError(f"cannot be read on {chrom} ({err}): the file is damaged or truncated.",
                             path=self.path, fix="Recreate the bigWig (e.g. with bedGraphToBigWig).") from None

    def intervals(self, chrom: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts, ends, values) of the stored intervals of ``chrom`` overlapping [start, end), in file order."""
        return next(self.span_intervals(chrom, [(start, end)]))

    def values(self, chrom: str, start: int, end: int, numpy: bool = True) -> np.ndarray:
        """float32 values of [start, end) (inside the chromosome), NaN where the file stores none (as pyBigWig's
        ``values(chrom, start, end, numpy=True)``, so :func:`~bpnetz.genome.bigwig.bigwig_windows` takes either)."""
        out = np.full(end - start, np.nan, dtype=np.float32)
        starts, ends, values = next(self.span_intervals(chrom, [(start, end)], clip=True))
        fill(out, starts - start, ends - start, values)
        return out


def fill(out: np.ndarray, starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> None:
    """``out[s:e] = v`` for each interval (offsets into ``out``; non-empty, non-overlapping)."""
    fill_runs(out, starts, ends - starts, values)


def fill_runs(out: np.ndarray, starts: np.ndarray, lengths: np.ndarray, values: np.ndarray) -> None:
    """``out[s:s + n] = v`` for each run (:func:`fill` given the lengths), vectorised: every run's first base by one
    scatter (cast to ``out``'s dtype by the assignment), then only the other bases of the longer runs through an
    index per base (count tracks are mostly single-base runs: 1.15 bases per interval in the simulated build's
    bigWigs)."""
    if not len(starts):
        return
    out[starts] = values
    longer = np.flatnonzero(lengths > 1)
    if not len(longer):
        return
    rest = lengths[longer] - 1
    first = np.repeat(starts[longer] + 1 - np.cumsum(rest) + rest, rest)
    out[first + np.arange(int(rest.sum()))] = np.repeat(values[longer], rest)


def _cumulative(values: np.ndarray, dtype: type) -> np.ndarray:
    """0 then the running sums of ``values``, in ``dtype`` (one pass: no concatenation)."""
    before = np.empty(len(values) + 1, dtype)
    before[0] = 0
    np.cumsum(values, out=before[1:], dtype=dtype)
    return before


def covered_in_windows(starts: np.ndarray, ends: np.ndarray, values: np.ndarray, offsets: np.ndarray, length: int,
                       lengths: np.ndarray | None = None, whole: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per window [o, o + length): the bases inside the intervals [starts, ends) (sorted, non-overlapping; their
    ``lengths`` when already computed) and the sum of their values, from the intervals' cumulative coverage and
    cumulative value. Bases are int64; sums are float64 (exact for whole numbers below 2**53), or int64 with
    ``whole`` (the values are whole numbers, as a count track's; an int64 running sum takes a fifth of a float64
    one's time: 12 vs 58 ms for the 40k-locus benchmark's 13.6 M intervals)."""
    total_dtype = np.int64 if whole else np.float64
    if not len(starts):
        return np.zeros(len(offsets), np.int64), np.zeros(len(offsets), total_dtype)
    lengths = ends - starts if lengths is None else lengths
    covered_before = _cumulative(lengths, np.int64)
    with np.errstate(invalid="ignore"):  # whole: a value that is not (NaN) is the caller's to refuse
        weighted = np.multiply(lengths, values, dtype=total_dtype, casting="unsafe")
        run_values = values.astype(total_dtype)
    sum_before = _cumulative(weighted, total_dtype)

    def below(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # bases and value sum of the intervals below x
        k = np.searchsorted(ends, x, side="right")
        inside = np.minimum(k, len(starts) - 1)
        partial = np.maximum(np.where(k < len(starts), x - starts[inside], 0), 0)
        return covered_before[k] + partial, sum_before[k] + partial * run_values[inside]

    (bases_end, sum_end), (bases_start, sum_start) = below(offsets + length), below(offsets)
    return bases_end - bases_start, sum_end - sum_start


def in_windows(starts: np.ndarray, ends: np.ndarray, offsets: np.ndarray, length: int) -> np.ndarray:
    """Boolean over the intervals: overlaps some window [o, o + length) (``offsets`` sorted)."""
    first = np.searchsorted(offsets + length, starts, side="right")  # the first window ending after the start
    return (first < len(offsets)) & (offsets[np.minimum(first, len(offsets) - 1)] < ends)


def _overlapping(parts: list, lo: int, hi: int, clip: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The intervals of ``parts`` ((starts, ends, values) of data block sections) overlapping [lo, hi), as fresh
    int64 starts and ends (each column concatenated and cast in one pass) and float32 values; cut to [lo, hi) with
    ``clip`` (sorted disjoint intervals, as bigWigs store them: only the first and the last can cross)."""
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    starts, ends = (np.concatenate([part[k] for part in parts], dtype=np.int64) for k in (0, 1))
    values = np.concatenate([part[2] for part in parts])
    if (starts[1:] >= ends[:-1]).all():  # sorted and disjoint: a slice, not a mask
        k0, k1 = int(np.searchsorted(ends, lo, side="right")), int(np.searchsorted(starts, hi, side="left"))
        starts, ends, values = starts[k0:k1], ends[k0:k1], values[k0:k1]
        if clip and len(starts):
            starts[0], ends[-1] = max(starts[0], lo), min(ends[-1], hi)
        return starts, ends, values
    keep = (ends > lo) & (starts < hi)
    starts, ends, values = starts[keep], ends[keep], values[keep]
    if clip:
        np.maximum(starts, lo, out=starts)
        np.minimum(ends, hi, out=ends)
    return starts, ends, values


def windows_into(readers: Sequence[BigWigReader], chroms: np.ndarray, starts: np.ndarray, length: int,
                 out: np.ndarray, checks: Sequence[Callable[[np.ndarray], None]]) -> tuple[np.ndarray, np.ndarray]:
    """Write the windows [start, start + length) of each reader's track into ``out`` (n, length, readers; a track
    per column), in its integer dtype, 0 where there is no value (also outside the chromosome); return, per window
    and track (n, readers), the positions with a value and the sum of its values (both int64).

    ``checks[t]`` raises when ``out``'s dtype cannot hold the values of track t's intervals that overlap a window
    (not whole numbers, or out of its range). It is first given every value of the spans read (which include the
    bases between windows: one vectorised test instead of locating each interval among the windows); only when that
    raises are the values inside windows located and checked again (an error then leaves ``out`` and the totals
    garbage). The spans are filled in ``out``'s dtype (1 byte per base for uint8 counts) rather than float32 with
    NaN, so a block makes no float pass over its windows, and the totals come from the intervals, not from the
    windows.

    Per interval the work is a few numpy passes (inflate, one cast-and-concatenate per column, a scatter, two
    running sums in int64): on the 40k-locus benchmark's 13.6 M intervals (4 tracks, one thread) this function took
    0.82 -> 0.65-0.70 CPU-s once the sections were parsed with ``struct``, the columns cast while concatenated, the
    spans clipped at their two end intervals only and the totals summed in int64. The tracks share each span's
    buffer (a column each), so a span's windows are gathered once for all tracks into whole rows of ``out``: two
    tracks' gathers of 6,656 windows took 7.2 -> 2.3 ms.
    """
    covered = np.zeros((len(starts), len(readers)), np.int64)
    total = np.zeros((len(starts), len(readers)), np.int64)
    spans = list(windows_by_span(chroms, starts, length, SPAN_GAP))
    streams = [_span_stream(reader, spans) for reader in readers]
    kept: list[list[tuple]] = [[] for _ in readers]
    for _, span_start, span_end, rows in spans:
        offsets = starts[rows] - span_start  # ascending: windows_by_span sorts by position
        span = np.zeros((span_end - span_start, len(readers)), dtype=out.dtype)
        for t, stream in enumerate(streams):
            found = next(stream)
            if found is None:
                continue
            first, last, values = found
            first -= span_start  # fresh arrays (span_intervals): made relative in place
            last -= span_start
            lengths = last - first
            kept[t].append((first, last, values, offsets))
            with np.errstate(invalid="ignore"):  # a value out of range (NaN) fails the check below
                fill_runs(span[:, t], first, lengths, values)
            covered[rows, t], total[rows, t] = covered_in_windows(first, last, values, offsets, length, lengths,
                                                                  whole=True)
        out[rows] = gather(span, offsets, length)
    for track_kept, check in zip(kept, checks, strict=True):
        _check_values(track_kept, length, check)
    return covered, total


def _span_stream(reader: BigWigReader, spans: list[tuple[str, int, int, np.ndarray]]
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """Per span of :func:`~bpnetz.genome.windows.windows_by_span` (grouped by chromosome), in order: the reader's
    intervals cut to the span's part inside the chromosome, or None when no part is."""
    sizes = reader.chroms()
    for chrom in dict.fromkeys(span[0] for span in spans):
        clipped = [(max(lo, 0), min(hi, sizes[chrom])) for name, lo, hi, _ in spans if name == chrom]
        found = reader.span_intervals(chrom, [(lo, hi) for lo, hi in clipped if hi > lo], clip=True)
        for lo, hi in clipped:
            yield next(found) if hi > lo else None


def _check_values(kept: list[tuple], length: int, check: Callable[[np.ndarray], None]) -> None:
    """``check`` the spans' values; when that raises, only those of intervals inside some window."""
    try:
        check(np.concatenate([values for _, _, values, _ in kept]) if kept else np.zeros(0, np.float32))
    except Exception:  # noqa: BLE001 (whatever the caller raises: a value between windows may be the reason)
        check(np.concatenate([values[in_windows(first, last, offsets, length)]
                              for first, last, values, offsets in kept]))


_SECTION_HEAD = struct.Struct("<IIIIIBBH")


def _sections(data: bytes, chrom_id: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(starts, ends, values) of each section of a decoded data block on ``chrom_id``: bedGraph records' columns
    as views of ``data`` (uint32; the span's concatenation casts them), the others computed (int64)."""
    parts, at = [], 0
    while at + _SECTION_HEAD.size <= len(data):
        chrom, first, _, step, span, kind, _, count = _SECTION_HEAD.unpack_from(data, at)
        at += _SECTION_HEAD.size
        if kind not in _RECORDS:
            raise OSError(f"unknown bigWig section type {kind}")
        records = np.frombuffer(data, _RECORDS[kind], count, at)
        at += count * _RECORDS[kind].itemsize
        if chrom != chrom_id:
            continue
        if kind == 1:
            starts, ends = records["start"], records["end"]
        else:
            starts = (records["start"].astype(np.int64) if kind == 2
                      else first + step * np.arange(count, dtype=np.int64))
            ends = starts + span
        parts.append((starts, ends, records["value"]))
    return parts


def open_reader(path: str | Path) -> BigWigReader | None:
    """A :class:`BigWigReader` of a little-endian bigWig, or None when the file is another kind (the caller then
    reads it with pyBigWig, which also reports what is wrong with it)."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if len(magic) < 4 or struct.unpack("<I", magic)[0] != MAGIC:
        return None
    try:
        return BigWigReader(path)
    except (OSError, ValueError, UnicodeDecodeError, struct.error):
        return None  # a damaged header or chromosome tree: pyBigWig reports it
