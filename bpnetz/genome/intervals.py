"""The one parser of genome interval files: chrom.sizes, BED / narrowPeak, and interval arithmetic.

One set of rules for every BED-like input (loci, backgrounds, blacklists, regions, the preprocessing commands'
peaks): data lines are split on tabs (on runs of whitespace when a line has no tab); comment, ``track`` and
``browser`` lines and blank lines are skipped; coordinates must be plain non-negative decimal integers (``9_491``,
``1e3`` or ``+5`` are refused, where Python's ``int`` would take some of them) with ``0 <= start < end``; the
summit offset (narrowPeak column 10) is -1 (absent) or lies inside the interval, ``0 <= offset < end - start``.
Every reader names the file and the 1-based line of a malformed record, so that a bad input ends in one
:class:`~bpnetz.errors.InputError` paragraph instead of a traceback. Gzipped files (``.gz``) are read
transparently.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from bpnetz.errors import InputError, notice

#: narrowPeak column holding the summit offset from the start (0-based index 9 = the 10th column).
SUMMIT_COLUMN = 9
#: narrowPeak column holding the score (used by the reference as the sample weight).
SCORE_COLUMN = 4
#: the most digits of a coordinate (int64 holds them; a longer one ended in an OverflowError)
_MAX_DIGITS = 18
_DIGITS = f"[0-9]{{1,{_MAX_DIGITS}}}"
#: a plain non-negative decimal of at most :data:`_MAX_DIGITS` digits
_DECIMAL = re.compile(rf"{_DIGITS}\Z")
_BED_FIX = "Check that the file is tab-separated BED/narrowPeak with 0 <= start < end on every line."


def require_file(path: str | Path, what: str) -> Path:
    """The path as a :class:`Path`, or an InputError saying which input is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} does not exist.", path=path,
                         fix="Check the path (relative paths are taken from the current directory).")
    return path


def open_text(path: str | Path, what: str = "file") -> IO[str]:
    """Open a text file for reading, gunzipping ``.gz`` files; a missing file is an InputError."""
    path = require_file(path, what)
    if path.suffix == ".gz":
        return gzip.open(path, "rt")
    return open(path)


def data_lines(path: str | Path, what: str = "file") -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, fields) of every data line (see the module docstring for the splitting rule)."""
    try:
        with open_text(path, what) as handle:
            for number, text in enumerate(handle, start=1):
                text = text.rstrip("\r\n")
                if not text.strip() or text.startswith(("#", "track", "browser")):
                    continue
                yield number, (text.split("\t") if "\t" in text else text.split())
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:  # zlib: a damaged gzip stream
        raise InputError(f"cannot be read as text ({err}).", path=path,
                         fix="Check that the file is a (optionally gzipped) text file.") from None


def parse_int(text: str, *, path: str | Path, line: int, column: int, what: str, allow_minus_one: bool = False
              ) -> int:
    """A plain non-negative decimal integer (or -1 when allowed), else an InputError naming file, line, column."""
    if _DECIMAL.match(text) or (allow_minus_one and text == "-1"):
        return int(text)
    raise InputError(f"line {line}: column {column} ({what}) is {text!r}, not a plain non-negative integer (of at "
                     f"most {_MAX_DIGITS} digits).", path=path, fix=_BED_FIX)


def read_chrom_sizes(path: str | Path) -> dict[str, int]:
    """Chromosome -> length from a two-column chrom.sizes file, in file order."""
    sizes: dict[str, int] = {}
    for number, fields in data_lines(path, "chromosome sizes file"):
        if len(fields) < 2 or not _DECIMAL.match(fields[1]):
            raise InputError(f"line {number} is not '<chrom> <length>': {' '.join(fields)!r}.", path=path,
                             fix="Use a chrom.sizes file (tab-separated name and length).")
        chrom, size = fields[0], int(fields[1])
        if size <= 0 or chrom in sizes:
            raise InputError(f"line {number}: chromosome {chrom!r} has length {size} or is listed twice.",
                             path=path, fix="Fix the chrom.sizes file.")
        sizes[chrom] = size
    if not sizes:
        raise InputError("no chromosomes listed.", path=path, fix="Use a non-empty chrom.sizes file.")
    return sizes


class TabFields(Sequence[list[str]]):
    """The fields of data lines (each line's fields joined by tabs), split when a row is asked for: splitting the
    40,000-locus benchmark's 31,496 narrowPeak lines at once took ~55 ms of every build's start, and a build needs
    only a few columns, which :func:`read_bed` reads whole. Each row asked for is a fresh list: to change a field,
    make new lines."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [line.split("\t") for line in self.lines[i]]
        return self.lines[i].split("\t")

    def __iter__(self) -> Iterator[list[str]]:
        return (line.split("\t") for line in self.lines)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)


@dataclass
class BedRecords:
    """Rows of one or more BED / narrowPeak files as columns, with every original field kept as text."""

    chrom: np.ndarray  # object (str)
    start: np.ndarray  # int64, 0-based
    end: np.ndarray  # int64
    summit_offset: np.ndarray  # int64, -1 where column 10 is absent or -1
    name: np.ndarray  # object (str): column 4, "." when absent or empty
    fields: TabFields  # every original column, as text
    source: list[str]  # file of each row
    line: np.ndarray  # int64, 1-based line of each row in its file
    paths: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def path(self) -> Path:
        """The file (the first one, when several were read together)."""
        return self.paths[0]

    @property
    def summit(self) -> np.ndarray:
        """Absolute summits ``start + offset`` (every row must have an offset: see :func:`read_narrowpeak`)."""
        return self.start + self.summit_offset

    def subset(self, keep: np.ndarray) -> BedRecords:
        """The rows selected by a boolean mask or an index array, in that order."""
        index = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        return BedRecords(chrom=self.chrom[index], start=self.start[index], end=self.end[index],
                          summit_offset=self.summit_offset[index], name=self.name[index],
                          fields=TabFields([self.fields.lines[i] for i in index]),
                          source=[self.source[i] for i in index], line=self.line[index], paths=self.paths)

    def where(self, i: int) -> str:
        """'file:line' of row i, for messages and logs."""
        return f"{self.source[i]}:{self.line[i]}"


def _record(fields: list[str], path: Path, number: int) -> tuple[int, int, int]:
    """(start, end, summit offset) of one data line, checked."""
    if len(fields) < 3:
        raise InputError(f"line {number} has {len(fields)} column(s); BED needs at least chrom, start, end.",
                         path=path, fix=_BED_FIX)
    start = parse_int(fields[1], path=path, line=number, column=2, what="start")
    end = parse_int(fields[2], path=path, line=number, column=3, what="end")
    if end <= start:
        raise InputError(f"line {number}: interval {fields[0]}:{start}-{end} is empty or ends before it starts.",
                         path=path, fix="Fix or remove that line (BED needs start < end).")
    offset = -1
    if len(fields) > SUMMIT_COLUMN:
        offset = parse_int(fields[SUMMIT_COLUMN], path=path, line=number, column=SUMMIT_COLUMN + 1,
                           what="summit offset", allow_minus_one=True)
        if offset >= end - start:
            raise InputError(f"line {number}: the summit offset {offset} (column 10) lies outside the peak "
                             f"{fields[0]}:{start}-{end} (it must be below end - start = {end - start}).",
                             path=path, fix="Fix the summit offset (it counts from the start), or remove the line.")
    return start, end, offset


#: a column of plain non-negative decimal integers (ASCII digits), one per line; and the same allowing -1
_DECIMAL_LINES = re.compile(rf"{_DIGITS}(?:\n{_DIGITS})*")
_DECIMAL_OR_MINUS_ONE_LINES = re.compile(rf"(?:{_DIGITS}|-1)(?:\n(?:{_DIGITS}|-1))*")


def _plain_integers(texts: list[str], allow_minus_one: bool = False) -> bool:
    """Whether every text is a plain non-negative decimal integer (or -1 when allowed), as :func:`parse_int`
    requires: one regular-expression match over the column joined by line ends (ASCII digits only; no text holds
    a line end, as each comes from splitting a line at tabs)."""
    pattern = _DECIMAL_OR_MINUS_ONE_LINES if allow_minus_one else _DECIMAL_LINES
    return not texts or pattern.fullmatch("\n".join(texts)) is not None


def _data_rows(text: str) -> tuple[list[list[str]], list[int]]:
    """The tab-split fields and 1-based line numbers of the data lines (not blank, not a comment, track or browser
    line; a CR before the line end dropped). A file without such lines (most) is split in one pass over all
    lines (31,496 narrowPeak lines: 0.05 -> 0.03 s). A line of blanks only is kept as data here, and fails the
    caller's column checks, so that the line-by-line parser reads the file."""
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    marked = f"\n{text}"
    if "\r" not in text and all(f"\n{mark}" not in marked for mark in ("#", "track", "browser")) and all(lines):
        return [line.split("\t") for line in lines], list(range(1, len(lines) + 1))
    numbers = [i for i, t in enumerate(lines, start=1)
               if t.strip() and not t.startswith(("#", "track", "browser"))]
    return [lines[i - 1].rstrip("\r").split("\t") for i in numbers], numbers


def _file_columns(path: Path, what: str) -> tuple[list[list[str]], list[int], np.ndarray] | None:
    """(fields, line numbers, [start, end, summit offset] columns) of every data line of one file, checked whole
    columns at a time; None when some line breaks a rule, so that :func:`_line_columns` names it.

    Why: the line-by-line path (three regex matches and a call per line) took 0.25-0.28 s for the 31,496 lines of
    the 40,000-locus benchmark's narrowPeak file; this one checks the same rules with a few comprehensions over
    the file in 0.10-0.12 s (splitting the lines into fields is 0.04 s of it)."""
    try:
        with open_text(path, what) as handle:
            text = handle.read()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error):
        return None  # the line-by-line path reports it
    rows, numbers = _data_rows(text)
    if not all(len(row) >= 3 for row in rows):
        return None  # a short line, or one separated by spaces
    starts, ends = [row[1] for row in rows], [row[2] for row in rows]
    summits = [row[SUMMIT_COLUMN] if len(row) > SUMMIT_COLUMN else "-1" for row in rows]
    if not (_plain_integers(starts) and _plain_integers(ends) and _plain_integers(summits, allow_minus_one=True)):
        return None
    n = len(rows)
    columns = np.empty((3, n), dtype=np.int64)
    for k, texts in enumerate((starts, ends, summits)):
        columns[k] = np.fromiter(map(int, texts), dtype=np.int64, count=n)
    start, end, offset = columns
    if (end <= start).any() or (offset >= end - start).any():
        return None
    return rows, numbers, columns


def _line_columns(path: Path, what: str) -> tuple[list[list[str]], list[int], np.ndarray]:
    """:func:`_file_columns` line by line, raising the InputError of the first line that breaks a rule."""
    rows, numbers, values = [], [], []
    for number, row in data_lines(path, what):
        values.append(_record(row, path, number))
        rows.append(row)
        numbers.append(number)
    return rows, numbers, np.asarray(values, dtype=np.int64).reshape(-1, 3).T


@dataclass
class _FileRows:
    """The data rows of one file, as :class:`BedRecords` holds them."""

    lines: list[str]  # each row's fields joined by tabs
    numbers: np.ndarray  # int64, 1-based line numbers
    columns: np.ndarray  # (3, n) int64: start, end, summit offset
    chrom: np.ndarray  # object (str)
    name: np.ndarray  # object (str)

    @classmethod
    def from_fields(cls, rows: list[list[str]], numbers: list[int], columns: np.ndarray) -> _FileRows:
        return cls(lines=["\t".join(row) for row in rows], numbers=np.asarray(numbers, dtype=np.int64),
                   columns=columns, chrom=np.asarray([row[0] for row in rows], dtype=object),
                   name=np.asarray([row[3] if len(row) > 3 and row[3] else "." for row in rows], dtype=object))


def _decimals(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, allow_minus_one: bool = False) -> np.ndarray | None:
    """The integers written in ``buf[lo:hi]`` per row (as :func:`parse_int` reads them: plain ASCII decimals, -1
    when allowed), from a digit matrix; None when some text is not one, or has more than :data:`_MAX_DIGITS`
    digits."""
    width = hi - lo
    if not len(width):
        return np.zeros(0, np.int64)
    most = int(width.max())
    if width.min() < 1 or most > _MAX_DIGITS:
        return None
    minus = ((width == 2) & (buf[lo] == ord("-")) & (buf[np.minimum(lo + 1, len(buf) - 1)] == ord("1"))
             if allow_minus_one
             else np.zeros(len(width), bool))
    inside = np.arange(most) >= (most - width)[:, None]  # right-aligned: the last digit in the last column
    digits = buf[np.where(inside, hi[:, None] - most + np.arange(most), 0)].astype(np.int64) - ord("0")
    if not (((digits >= 0) & (digits <= 9)) | ~inside | minus[:, None]).all():
        return None
    digits[~inside | minus[:, None]] = 0
    values = digits @ 10 ** np.arange(most - 1, -1, -1, dtype=np.int64)
    values[minus] = -1
    return values


#: the widest chromosome names :func:`_texts` decodes through a byte matrix (wider ones are sliced from the text)
_MATRIX_WIDTH = 64


def _texts(text: str, buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, distinct_few: bool = False) -> np.ndarray:
    """The texts ``text[lo:hi]`` per row (``buf``: its ASCII bytes) as an object array of str. Sliced one by one
    (31,496 names: 7 ms), or, with ``distinct_few`` (chromosome names), through a byte matrix decoded once per
    distinct text (4 ms), unless some text is wider than :data:`_MATRIX_WIDTH` (the matrix grows with the widest:
    one 20 kB name among 20,000 lines made it 6.5 GB)."""
    width = hi - lo
    if distinct_few and len(width) and 0 < int(width.max()) <= _MATRIX_WIDTH:
        most = int(width.max())
        inside = np.arange(most) < width[:, None]
        matrix = np.where(inside, buf[np.minimum(lo[:, None] + np.arange(most), len(buf) - 1)], 0).astype(np.uint8)
        distinct, inverse = np.unique(matrix.view(f"S{most}").ravel(), return_inverse=True)
        return distinct.astype(f"U{most}").astype(object)[inverse.ravel()]
    texts = np.empty(len(lo), dtype=object)
    texts[:] = [text[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
    return texts


def _uniform_rows(path: Path) -> _FileRows | None:
    """The rows of a file whose every line holds the same number (at least 3) of tab-separated columns: ASCII, no
    NUL or CR, no blank, comment, ``track`` or ``browser`` line, integer columns plain decimals within bounds (the
    module's rules); None for any other file, which the text paths read (and whose errors they name).

    The columns are cut and parsed by numpy on the file's bytes (tab and line-end positions, a digit matrix per
    integer column), and the lines are split into fields only when asked (:class:`TabFields`): the 40,000-locus
    benchmark's two loci files took 0.12-0.16 -> 0.04 s (the largest serial step of a build's start). Fuzzes of 6,000
    and 15,000 files (2,064 and ~4,400 of them taken by this path) gave the line-by-line parser's records exactly,
    once a file of a single line end (the second fuzz: an IndexError) was left to the text paths."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error):
        return None
    if not data or not data.isascii() or b"\r" in data or b"\0" in data:
        return None
    size = len(data) - data.endswith(b"\n")
    if not size:  # one line end: no data line
        return None
    buf = np.frombuffer(data, np.uint8, size)
    ends = np.r_[np.flatnonzero(buf == ord("\n")), size]
    begins = np.r_[0, ends[:-1] + 1]
    first = buf[np.minimum(begins, size - 1)]
    if ((first == ord("#")) | (first == ord("t")) | (first == ord("b"))).any() and \
            any(b"\n" + mark in b"\n" + data for mark in (b"#", b"track", b"browser")):
        return None
    tabs = np.flatnonzero(buf == ord("\t"))
    n = len(ends)
    if len(tabs) % n or len(tabs) < 2 * n:
        return None
    tabs = tabs.reshape(n, -1)  # row i holds line i's tabs when each lies inside its line:
    if not ((tabs[:, 0] > begins) & (tabs[:, -1] < ends)).all():
        return None

    def column(c: int) -> tuple[np.ndarray, np.ndarray]:  # where column c's text begins and ends on each line
        return (begins if c == 0 else tabs[:, c - 1] + 1), (tabs[:, c] if c < tabs.shape[1] else ends)

    start, end = _decimals(buf, *column(1)), _decimals(buf, *column(2))
    offset = (_decimals(buf, *column(SUMMIT_COLUMN), allow_minus_one=True) if tabs.shape[1] >= SUMMIT_COLUMN
              else np.full(n, -1, dtype=np.int64))
    if start is None or end is None or offset is None or (end <= start).any() or (offset >= end - start).any():
        return None
    text = data[:size].decode("ascii")
    name = _texts(text, buf, *column(3)) if tabs.shape[1] >= 3 else np.full(n, ".", dtype=object)
    name[name == ""] = "."
    return _FileRows(lines=text.split("\n"), numbers=np.arange(1, n + 1, dtype=np.int64),
                     columns=np.stack([start, end, offset]), chrom=_texts(text, buf, *column(0), distinct_few=True),
                     name=name)


def read_bed(paths: str | Path | Sequence[str | Path], what: str = "BED file") -> BedRecords:
    """Parse BED (≥ 3 columns) or narrowPeak (summit offset in column 10) files, in order, by the module's rules:
    :func:`_uniform_rows`, else :func:`_file_columns`, else line by line (:func:`_line_columns`, which names the
    first line that breaks a rule)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    parts, source = [], []
    for path in paths:
        path = require_file(path, what)
        part = _uniform_rows(path) or _FileRows.from_fields(*(_file_columns(path, what) or _line_columns(path, what)))
        parts.append(part)
        source += [str(path)] * len(part.lines)
    if not parts:
        parts = [_FileRows.from_fields([], [], np.zeros((3, 0), np.int64))]
    start, end, offset = np.concatenate([part.columns for part in parts], axis=1)
    return BedRecords(chrom=np.concatenate([part.chrom for part in parts]), start=start, end=end,
                      summit_offset=offset, name=np.concatenate([part.name for part in parts]),
                      fields=TabFields([line for part in parts for line in part.lines]), source=source,
                      line=np.concatenate([part.numbers for part in parts]), paths=[Path(p) for p in paths])


def read_narrowpeak(paths: str | Path | Sequence[str | Path]) -> BedRecords:
    """narrowPeak files: :func:`read_bed` where every row must carry a summit offset (column 10, not -1)."""
    peaks = read_bed(paths, "narrowPeak file")
    missing = np.flatnonzero(peaks.summit_offset < 0)
    if len(missing):
        i = int(missing[0])
        raise InputError(f"line {peaks.line[i]} has no summit offset: narrowPeak needs 10 columns, the 10th the "
                         "summit offset from the start (not -1).", path=peaks.source[i],
                         fix="Use narrowPeak files, or add a 10th column with (end - start) // 2.")
    return peaks


def read_intervals(path: str | Path, what: str = "BED file") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Chromosome -> (starts, ends) of a BED file's intervals (e.g. a blacklist), in file order."""
    bed = read_bed(path, what)
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for chrom in dict.fromkeys(bed.chrom.tolist()):
        rows = bed.chrom == chrom
        found[chrom] = (bed.start[rows], bed.end[rows])
    return found


def read_blacklist(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A blacklist BED file as merged intervals per chromosome (for :func:`overlaps_any`)."""
    return {chrom: merge_intervals(s, e) for chrom, (s, e) in read_intervals(path, "blacklist BED file").items()}


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


def sort_by_position(chrom: np.ndarray, start: np.ndarray, chrom_order: Sequence[str]) -> np.ndarray:
    """Row order by chromosome (in ``chrom_order``; others after, by name) then start; stable for ties."""
    rank = {c: i for i, c in enumerate(chrom_order)}
    extra = sorted(set(chrom) - set(rank))
    rank.update({c: len(chrom_order) + i for i, c in enumerate(extra)})
    chrom_rank = np.fromiter((rank[c] for c in chrom), dtype=np.int64, count=len(chrom))
    return np.lexsort((start, chrom_rank))


def chromosome_sizes(chrom_sizes: str | Path | None, genome_record: Mapping[str, Any] | None,
                     purpose: str) -> dict[str, int]:
    """Chromosome sizes from a chrom.sizes file, else from a store's genome record (its ``chroms``)."""
    if chrom_sizes is not None:
        return read_chrom_sizes(chrom_sizes)
    genome = genome_record or {}
    if genome.get("chroms"):
        notice(f"{purpose}: chromosome sizes taken from the store's genome record ({genome.get('path')}).")
        return {str(c): int(n) for c, n in genome["chroms"].items()}
    raise InputError(f"{purpose} needs the chromosome sizes.", fix="Pass --chrom-sizes.")
