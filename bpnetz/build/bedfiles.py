"""Plain-text genome files of the preprocessing commands: chrom.sizes, BED / narrowPeak, interval overlaps, and
atomic output.

Every reader names the file and the 1-based line of a malformed record, so that a bad input ends in one
:class:`~bpnetz.errors.InputError` paragraph instead of a traceback. Gzipped files (``.gz``) are read
transparently. Outputs are written to a temporary file next to the target and renamed into place, so a reader
never sees half a file.
"""

from __future__ import annotations

import gzip
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from bpnetz.errors import InputError

#: narrowPeak column holding the summit offset from the start (0-based index 9 = the 10th column).
SUMMIT_COLUMN = 9
#: narrowPeak column holding the score (used by the reference as the sample weight).
SCORE_COLUMN = 4


def open_text(path: str | Path) -> IO[str]:
    """Open a text file for reading, gunzipping ``.gz`` files; a missing file is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file does not exist.", path=path, fix="Check the path.")
    if path.suffix == ".gz":
        return gzip.open(path, "rt")
    return open(path)


def _data_lines(handle: IO[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) of every non-empty line that is not a header or comment."""
    for number, line in enumerate(handle, start=1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        yield number, line


def read_chrom_sizes(path: str | Path) -> dict[str, int]:
    """Chromosome -> length from a two-column chrom.sizes file, in file order."""
    sizes: dict[str, int] = {}
    with open_text(path) as handle:
        for number, line in _data_lines(handle):
            fields = line.split()
            try:
                chrom, size = fields[0], int(fields[1])
            except (IndexError, ValueError):
                raise InputError(f"line {number} is not '<chrom> <length>': {line!r}.", path=path,
                                 fix="Use a chrom.sizes file (tab-separated name and length).") from None
            if size <= 0 or chrom in sizes:
                raise InputError(f"line {number}: chromosome {chrom!r} has length {size} or is listed twice.",
                                 path=path, fix="Fix the chrom.sizes file.")
            sizes[chrom] = size
    if not sizes:
        raise InputError("no chromosomes listed.", path=path, fix="Use a non-empty chrom.sizes file.")
    return sizes


@dataclass
class Peaks:
    """Rows of one or more narrowPeak files: coordinates, absolute summits and the original fields."""

    chrom: np.ndarray  # object array of names
    start: np.ndarray  # int64, BED start (0-based)
    end: np.ndarray  # int64
    summit: np.ndarray  # int64, start + summit offset
    fields: list[list[str]]  # every original column, as text
    source: list[str]  # file of each row
    line: np.ndarray  # int64, 1-based line of each row in its file

    def __len__(self) -> int:
        return len(self.start)

    def subset(self, keep: np.ndarray) -> Peaks:
        """The rows selected by a boolean mask or an index array, in that order."""
        index = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        return Peaks(chrom=self.chrom[index], start=self.start[index], end=self.end[index],
                     summit=self.summit[index], fields=[self.fields[i] for i in index],
                     source=[self.source[i] for i in index], line=self.line[index])

    def where(self, i: int) -> str:
        """'file:line' of row i, for messages and logs."""
        return f"{self.source[i]}:{self.line[i]}"


def read_narrowpeak(paths: Sequence[str | Path]) -> Peaks:
    """Read narrowPeak files (10 or more columns; summit = start + column 10), keeping every original column."""
    chrom, start, end, offset, fields, source, line = [], [], [], [], [], [], []
    for path in paths:
        with open_text(path) as handle:
            for number, text in _data_lines(handle):
                row = text.split("\t")
                if len(row) <= SUMMIT_COLUMN:
                    raise InputError(f"line {number} has {len(row)} tab-separated columns; narrowPeak needs 10 "
                                     "(the 10th is the summit offset from the start).", path=path,
                                     fix="Use narrowPeak files, or add a 10th column with (end - start) // 2.")
                try:
                    s, e, o = int(row[1]), int(row[2]), int(row[SUMMIT_COLUMN])
                except ValueError:
                    raise InputError(f"line {number}: start, end and summit (columns 2, 3, 10) must be integers; "
                                     f"got {row[1]!r}, {row[2]!r}, {row[SUMMIT_COLUMN]!r}.", path=path,
                                     fix="Fix the line.") from None
                if s < 0 or e <= s or o < 0:
                    raise InputError(f"line {number}: needs 0 <= start < end and a summit offset >= 0 "
                                     f"(got start {s}, end {e}, summit offset {o}; -1 means 'no summit').",
                                     path=path, fix="Give every peak a summit offset, e.g. (end - start) // 2.")
                chrom.append(row[0])
                start.append(s)
                end.append(e)
                offset.append(o)
                fields.append(row)
                source.append(str(path))
                line.append(number)
    start_a = np.asarray(start, dtype=np.int64)
    return Peaks(chrom=np.asarray(chrom, dtype=object), start=start_a, end=np.asarray(end, dtype=np.int64),
                 summit=start_a + np.asarray(offset, dtype=np.int64), fields=fields, source=source,
                 line=np.asarray(line, dtype=np.int64))


def read_intervals(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Chromosome -> (starts, ends) of a BED file's first three columns (e.g. a blacklist)."""
    found: dict[str, tuple[list[int], list[int]]] = {}
    with open_text(path) as handle:
        for number, text in _data_lines(handle):
            row = text.split()
            try:
                s, e = int(row[1]), int(row[2])
            except (IndexError, ValueError):
                raise InputError(f"line {number} is not '<chrom> <start> <end>': {text!r}.", path=path,
                                 fix="Use a BED file.") from None
            starts, ends = found.setdefault(row[0], ([], []))
            starts.append(s)
            ends.append(e)
    return {c: (np.asarray(s, dtype=np.int64), np.asarray(e, dtype=np.int64)) for c, (s, e) in found.items()}


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint union of half-open intervals [start, end) (touching intervals stay separate)."""
    if len(starts) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts, np.int64)[order], np.asarray(ends, np.int64)[order]
    reach = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] >= reach[:-1]
    group = np.cumsum(new) - 1
    merged_end = np.zeros(group[-1] + 1, dtype=np.int64)
    np.maximum.at(merged_end, group, e)
    return s[new], merged_end


def overlaps_any(starts: np.ndarray, ends: np.ndarray,
                 merged: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Whether each half-open window [start, end) shares at least one base with the merged intervals."""
    m_starts, m_ends = merged
    if len(m_starts) == 0:
        return np.zeros(len(starts), dtype=bool)
    last = np.searchsorted(m_starts, ends, side="left") - 1  # last interval starting before the window ends
    return (last >= 0) & (m_ends[np.maximum(last, 0)] > starts)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (not yet created); rename it onto ``path`` when the block succeeds.

    The parent directory is created. On error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def sort_by_position(chrom: np.ndarray, start: np.ndarray, chrom_order: Sequence[str]) -> np.ndarray:
    """Row order by chromosome (in ``chrom_order``; others after, by name) then start; stable for ties."""
    rank = {c: i for i, c in enumerate(chrom_order)}
    extra = sorted(set(chrom) - set(rank))
    rank.update({c: len(chrom_order) + i for i, c in enumerate(extra)})
    chrom_rank = np.fromiter((rank[c] for c in chrom), dtype=np.int64, count=len(chrom))
    return np.lexsort((start, chrom_rank))
