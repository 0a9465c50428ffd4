"""Aligned reads (BAM/SAM/CRAM, tagAlign or fragments BED) -> bigWigs of 5'-end counts per base.

This replaces the reference pipeline's samtools + bedtools genomecov + bedGraphToBigWig steps, with no external
binaries. Conventions (all stated in ``bpnetz bam2bw --help``):

* 5' end of a read: ``reference_start`` on the + strand, ``reference_end - 1`` on the - strand. Soft-clipped
  bases are not aligned, so they are excluded (the 5' end is the first/last *aligned* base); deletions and
  skips (D/N) inside the alignment count towards its reference span.
* Reads skipped: unmapped, secondary, supplementary and QC-failed alignments, mate 2 of a pair (paired-end data
  counts read 1 only, one 5' end per fragment), and alignments with MAPQ < ``min_mapq`` (default 0: no filter,
  as ENCODE-filtered BAMs are already filtered; use 30 for raw alignments).
* Duplicates (default removed): reads flagged as duplicates (0x400) are dropped, and reads sharing chromosome,
  strand and 5' position are counted once. ``keep_duplicates`` keeps both. Duplicates are removed per input
  file; several inputs (replicates) are summed afterwards.
* ``shift`` moves 5' ends along their strand: + ends right by ``shift`` bases, - ends left. Ends shifted off the
  chromosome are dropped.
* Stranded output (ChIP-nexus/-exo): ``<prefix>.plus.bw`` and ``<prefix>.minus.bw`` (minus counts positive);
  unstranded (ChIP-seq): ``<prefix>.bw`` with both strands summed. Zero-count bases are not stored (gaps).
* tagAlign: 5' end = start (+) or end - 1 (-), strand in column 6. Fragments (chrom, start, end[, barcode,
  count]): both ends of each fragment are cut sites: start on +, end - 1 on -; with ``keep_duplicates`` the
  5th column (duplicate count) weights them.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.errors import InputError
from bpnetz.genome.bigwig import bigwig_output
from bpnetz.genome.intervals import open_text, read_chrom_sizes

FORMATS = ("auto", "bam", "tagalign", "fragments")
_ALIGNMENT_SUFFIXES = (".bam", ".sam", ".cram")

FLAG_PAIRED, FLAG_UNMAPPED, FLAG_REVERSE, FLAG_READ2 = 0x1, 0x4, 0x10, 0x80
FLAG_SECONDARY, FLAG_QCFAIL, FLAG_DUPLICATE, FLAG_SUPPLEMENTARY = 0x100, 0x200, 0x400, 0x800
#: flag bit -> reason a read is skipped, checked in this order.
SKIPPED_FLAGS = ((FLAG_UNMAPPED, "unmapped"), (FLAG_SECONDARY, "secondary"), (FLAG_SUPPLEMENTARY, "supplementary"),
                 (FLAG_QCFAIL, "QC-failed"))

PROGRESS_EVERY = 200_000


@dataclass
class ReadEnds:
    """5' ends of the reads counted from one input file, per strand and chromosome (before shift and dedup)."""

    sizes: dict[str, int]
    plus: dict[str, np.ndarray] = field(default_factory=dict)  # chrom -> int64 positions
    minus: dict[str, np.ndarray] = field(default_factory=dict)
    plus_weight: dict[str, np.ndarray] = field(default_factory=dict)  # chrom -> duplicate multiplicities
    minus_weight: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)  # reason -> reads
    flagged_duplicates: int = 0

    @property
    def n_ends(self) -> int:
        return sum(len(p) for p in self.plus.values()) + sum(len(p) for p in self.minus.values())


@dataclass
class Counts:
    """Sparse per-base counts: chromosome -> (sorted positions, counts > 0)."""

    by_chrom: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(c.sum() for _, c in self.by_chrom.values()))


@dataclass
class Bam2BwResult:
    """What :func:`reads_to_bigwigs` wrote and counted."""

    outputs: list[Path]
    ends_read: int
    ends_counted: int
    positional_duplicates: int
    flagged_duplicates: int
    skipped: Counter
    seconds: float

    def summary(self) -> str:
        skipped = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.skipped.items())) or "none"
        return (f"bam2bw: {self.ends_counted:,} 5' ends counted of {self.ends_read:,} read ends "
                f"({self.positional_duplicates:,} positional duplicates and {self.flagged_duplicates:,} flagged "
                f"duplicates removed; skipped: {skipped}) -> {', '.join(map(str, self.outputs))} "
                f"in {self.seconds:.1f} s")


# ------------------------------------------------------------------------------------------------- readers


def detect_format(path: str | Path) -> str:
    """'bam' for .bam/.sam/.cram; otherwise 'tagalign' when the first record has a +/- strand in column 6,
    else 'fragments'."""
    path = Path(path)
    if path.name.lower().endswith(_ALIGNMENT_SUFFIXES):
        return "bam"
    with open_text(path) as handle:
        for line in handle:
            if line.strip() and not line.startswith(("#", "track", "browser")):
                fields = line.rstrip("\r\n").split("\t")
                return "tagalign" if len(fields) >= 6 and fields[5] in ("+", "-") else "fragments"
    raise InputError("no records found.", path=path, fix="Pass a non-empty BAM, tagAlign or fragments file.")


def _group_by_chrom(tids: np.ndarray, positions: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Split positions by chromosome id into chrom name -> positions."""
    order = np.argsort(tids, kind="stable")
    tids, positions = tids[order], positions[order]
    ids, first = np.unique(tids, return_index=True)
    parts = np.split(positions, first[1:])
    return {names[i]: part for i, part in zip(ids, parts)}


def _alignment_sizes(bam, path: Path, chrom_sizes: dict[str, int] | None) -> dict[str, int]:
    """Chromosome sizes: the BAM header's, checked against ``chrom_sizes`` when given."""
    header = dict(zip(bam.references, bam.lengths))
    if chrom_sizes is None:
        if not header:
            raise InputError("the header lists no reference sequences (@SQ lines), so chromosome sizes are "
                             "unknown.", path=path, fix="Pass --chrom-sizes, or reheader the file.")
        return header
    for chrom, size in chrom_sizes.items():
        if chrom in header and header[chrom] != size:
            raise InputError(f"chromosome {chrom} has length {header[chrom]} in the header but {size} in "
                             "--chrom-sizes.", path=path, fix="Use the chrom sizes of the genome the reads "
                             "were aligned to.")
    return dict(chrom_sizes)


def read_alignment_ends(path: str | Path, *, min_mapq: int = 0, keep_duplicates: bool = False,
                        chrom_sizes: dict[str, int] | None = None, threads: int = 1) -> ReadEnds:
    """5' ends of the counted reads of a BAM/SAM/CRAM file (indexed or not), per strand and chromosome."""
    import pysam

    path = Path(path)
    if not path.is_file():
        raise InputError("file does not exist.", path=path, fix="Check the path.")
    try:
        bam = pysam.AlignmentFile(str(path), threads=max(1, threads), check_sq=False)
    except (ValueError, OSError) as err:
        raise InputError(f"cannot read as BAM/SAM/CRAM ({err}).", path=path,
                         fix="Pass an alignment file, or a tagAlign/fragments BED with --format.") from None
    with bam:
        sizes = _alignment_sizes(bam, path, chrom_sizes)
        names = list(bam.references)
        known = np.array([name in sizes for name in names] + [False], dtype=bool)
        tids, positions, skipped, flagged = _scan_reads(bam, path, min_mapq, keep_duplicates)
    ends = ReadEnds(sizes=sizes, skipped=skipped, flagged_duplicates=flagged)
    for reverse, target in ((False, ends.plus), (True, ends.minus)):
        tid = np.frombuffer(tids[reverse], dtype=np.int32) if len(tids[reverse]) else np.zeros(0, np.int32)
        pos = np.frombuffer(positions[reverse], dtype=np.int64) if len(tid) else np.zeros(0, np.int64)
        off_genome = ~known[tid]
        if off_genome.any():
            ends.skipped["chromosome not in chrom sizes"] += int(off_genome.sum())
        target.update(_group_by_chrom(tid[~off_genome], pos[~off_genome], names))
    return ends


def _scan_reads(bam: Any, path: Path, min_mapq: int, keep_duplicates: bool
                ) -> tuple[dict[bool, array], dict[bool, array], Counter, int]:
    """One pass over the reads: reference ids and 5' positions of the counted reads keyed by "is reverse", the
    skipped reads by reason and the number of flagged duplicates left out."""
    from tqdm import tqdm

    skip_mask = FLAG_UNMAPPED | FLAG_SECONDARY | FLAG_SUPPLEMENTARY | FLAG_QCFAIL
    tids = {False: array("i"), True: array("i")}  # key: is reverse
    positions = {False: array("q"), True: array("q")}
    skipped: Counter = Counter()
    flagged = 0
    total = None
    if bam.has_index() and path.suffix != ".sam":
        total = sum(s.total for s in bam.get_index_statistics()) + bam.unmapped
    bar = tqdm(total=total, unit="reads", unit_scale=True, desc=f"reading {path.name}", leave=False)
    try:
        for n, read in enumerate(bam.fetch(until_eof=True), start=1):
            if n % PROGRESS_EVERY == 0:
                bar.update(PROGRESS_EVERY)
            flag = read.flag
            if flag & skip_mask:
                skipped[next(reason for bit, reason in SKIPPED_FLAGS if flag & bit)] += 1
                continue
            if flag & FLAG_PAIRED and flag & FLAG_READ2:
                skipped["mate 2"] += 1
                continue
            if flag & FLAG_DUPLICATE and not keep_duplicates:
                flagged += 1
                continue
            if read.mapping_quality < min_mapq:
                skipped[f"MAPQ < {min_mapq}"] += 1
                continue
            reverse = bool(flag & FLAG_REVERSE)
            tids[reverse].append(read.reference_id)
            positions[reverse].append(read.reference_end - 1 if reverse else read.reference_start)
    except (ValueError, OSError) as err:
        raise InputError(f"corrupt or truncated alignment file ({err}).", path=path,
                         fix="Re-create the file (samtools quickcheck tells whether it is complete).") from None
    finally:
        bar.close()
    return tids, positions, skipped, flagged


def read_bed_ends(path: str | Path, input_format: str, chrom_sizes: dict[str, int], *,
                  keep_duplicates: bool = False) -> ReadEnds:
    """5' ends of a tagAlign (one read per line) or fragments BED (two cut sites per fragment)."""
    import pandas as pd

    path = Path(path)
    n_columns = 6 if input_format == "tagalign" else 3
    need = "6 columns (chrom, start, end, name, score, strand)" if input_format == "tagalign" else \
        "at least 3 columns (chrom, start, end[, barcode, count])"
    try:
        with open_text(path) as handle:
            table = pd.read_csv(handle, sep="\t", header=None, comment="#", dtype={0: str})
        if table.shape[1] < n_columns:
            raise ValueError(f"found {table.shape[1]} columns")
        start, end = table[1].to_numpy(dtype=np.int64), table[2].to_numpy(dtype=np.int64)
        weight = np.ones(len(table), dtype=np.int64)
        if input_format == "fragments" and keep_duplicates and table.shape[1] >= 5:
            weight = table[4].to_numpy(dtype=np.int64)
    except (ValueError, TypeError, pd.errors.ParserError) as err:
        raise InputError(f"cannot read as {input_format} ({err}).", path=path,
                         fix=f"A {input_format} file has {need}, tab-separated, with integer positions.") from None
    chrom = table[0].to_numpy(dtype=object)
    if input_format == "tagalign":
        strand = table[5].to_numpy(dtype=object)
        bad = ~np.isin(strand, ["+", "-"])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"record {row + 1} has strand {strand[row]!r}; tagAlign needs + or - in column 6.",
                             path=path, fix="Fix the strand column or pass --format fragments.")
        plus_mask = strand == "+"
        groups = {False: (chrom[plus_mask], start[plus_mask], weight[plus_mask]),
                  True: (chrom[~plus_mask], end[~plus_mask] - 1, weight[~plus_mask])}
    else:
        groups = {False: (chrom, start, weight), True: (chrom, end - 1, weight)}
    ends = ReadEnds(sizes=dict(chrom_sizes))
    for reverse, (chroms, pos, w) in groups.items():
        target, target_w = (ends.minus, ends.minus_weight) if reverse else (ends.plus, ends.plus_weight)
        names, codes = np.unique(chroms.astype(str), return_inverse=True)
        unknown = [n for n in names if n not in chrom_sizes]
        if unknown:
            ends.skipped["chromosome not in chrom sizes"] += int(np.isin(chroms, unknown).sum())
        for i, name in enumerate(names):
            if name in chrom_sizes:
                mask = codes == i
                target[str(name)] = pos[mask].astype(np.int64)
                target_w[str(name)] = w[mask]
    return ends


# ------------------------------------------------------------------------------------------------ counting


def count_ends(positions: np.ndarray, size: int, *, shift: int = 0, weights: np.ndarray | None = None,
               dedup: bool = True) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Sparse counts of 5' ends on one strand of one chromosome.

    ``shift`` is the signed genomic displacement (already strand-aware). Returns (sorted positions, counts,
    number of duplicates removed, number of ends outside the chromosome).
    """
    positions = np.asarray(positions, dtype=np.int64)
    weights = np.ones(len(positions), np.int64) if weights is None else np.asarray(weights, np.int64)
    unique, inverse = np.unique(positions, return_inverse=True)
    counts = np.bincount(inverse, weights=weights, minlength=len(unique)).astype(np.int64)
    duplicates = 0
    if dedup:
        duplicates = int(counts.sum() - np.count_nonzero(counts))
        counts = (counts > 0).astype(np.int64)
    unique = unique + shift
    inside = (unique >= 0) & (unique < size) & (counts > 0)
    outside = int(counts[~inside].sum())
    return unique[inside], counts[inside], duplicates, outside


def sum_counts(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Add sparse (positions, counts) tracks of the same chromosome."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(parts) == 1:
        return parts[0]
    positions = np.concatenate([p for p, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    unique, inverse = np.unique(positions, return_inverse=True)
    return unique, np.bincount(inverse, weights=counts, minlength=len(unique)).astype(np.int64)


def write_count_bigwig(path: str | Path, sizes: dict[str, int], counts: Counts) -> Path:
    """Write sparse per-base counts as a bigWig (span-1 entries, zeros omitted), atomically."""
    with bigwig_output(path, list(sizes.items()), maxZooms=10) as bw:
        for chrom in sizes:
            positions, values = counts.by_chrom.get(chrom, (np.zeros(0, np.int64), None))
            if len(positions):
                bw.addEntries(chrom, positions.astype(np.int64), values=values.astype(np.float64), span=1)
    return Path(path)


def output_paths(output_prefix: str | Path, unstranded: bool) -> list[Path]:
    """``<prefix>.bw`` (unstranded) or ``<prefix>.plus.bw`` and ``<prefix>.minus.bw``."""
    prefix = str(output_prefix)
    return [Path(prefix + ".bw")] if unstranded else [Path(prefix + ".plus.bw"), Path(prefix + ".minus.bw")]


def reads_to_bigwigs(inputs: Sequence[str | Path], output_prefix: str | Path, *, input_format: str = "auto",
                     chrom_sizes: str | Path | None = None, shift: int = 0, unstranded: bool = False,
                     min_mapq: int = 0, keep_duplicates: bool = False, threads: int = 1) -> Bam2BwResult:
    """Count 5' ends of one or more read files (summed) and write stranded or unstranded bigWigs."""
    if input_format not in FORMATS:
        raise InputError(f"unknown input format {input_format!r}; choose one of {', '.join(FORMATS)}.")
    began = time.perf_counter()
    sizes_given = read_chrom_sizes(chrom_sizes) if chrom_sizes is not None else None
    per_input: list[ReadEnds] = []
    for path in inputs:
        fmt = detect_format(path) if input_format == "auto" else input_format
        if fmt == "bam":
            per_input.append(read_alignment_ends(path, min_mapq=min_mapq, keep_duplicates=keep_duplicates,
                                                 chrom_sizes=sizes_given, threads=threads))
        else:
            if sizes_given is None:
                raise InputError(f"{fmt} input has no header with chromosome sizes.", path=path,
                                 fix="Pass --chrom-sizes.")
            per_input.append(read_bed_ends(path, fmt, sizes_given, keep_duplicates=keep_duplicates))
    sizes = _common_sizes(per_input, inputs)
    strands: dict[str, dict[str, list]] = {"+": {}, "-": {}}
    duplicates = outside = 0
    for ends in per_input:
        for strand, table, weights, step in (("+", ends.plus, ends.plus_weight, shift),
                                             ("-", ends.minus, ends.minus_weight, -shift)):
            for chrom, positions in table.items():
                pos, cnt, dup, out = count_ends(positions, sizes[chrom], shift=step, weights=weights.get(chrom),
                                                dedup=not keep_duplicates)
                strands[strand].setdefault(chrom, []).append((pos, cnt))
                duplicates += dup
                outside += out
    tracks = [strands["+"], strands["-"]]
    if unstranded:
        tracks = [{c: strands["+"].get(c, []) + strands["-"].get(c, []) for c in sizes}]
    outputs = output_paths(output_prefix, unstranded)
    counted = 0
    for path, track in zip(outputs, tracks):
        counts = Counts({chrom: sum_counts(parts) for chrom, parts in track.items()})
        counted += counts.total
        write_count_bigwig(path, sizes, counts)
    skipped: Counter = Counter()
    for ends in per_input:
        skipped.update(ends.skipped)
    if outside:
        skipped["shifted off the chromosome"] += outside
    read_total = sum(e.n_ends for e in per_input)
    if counted == 0 and read_total + sum(skipped.values()) > 0:
        raise InputError(f"no read could be counted (skipped: {dict(skipped)}).", path=", ".join(map(str, inputs)),
                         fix="Check that chromosome names match the chrom sizes and the filters (--min-mapq).")
    return Bam2BwResult(outputs=outputs, ends_read=read_total, ends_counted=counted,
                        positional_duplicates=duplicates,
                        flagged_duplicates=sum(e.flagged_duplicates for e in per_input), skipped=skipped,
                        seconds=time.perf_counter() - began)


def _common_sizes(per_input: Sequence[ReadEnds], inputs: Sequence[str | Path]) -> dict[str, int]:
    """One chromosome-size table for all inputs: the first input's, with the others' added; conflicts fail."""
    sizes: dict[str, int] = {}
    for ends, path in zip(per_input, inputs):
        for chrom, size in ends.sizes.items():
            if sizes.setdefault(chrom, size) != size:
                raise InputError(f"chromosome {chrom} has length {size} here but {sizes[chrom]} in an earlier "
                                 "input.", path=path, fix="Combine only files aligned to the same genome.")
    return sizes
