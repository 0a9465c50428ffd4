"""bam2bw: every base of the written bigWigs equals 5' ends counted independently from the known reads."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pyBigWig
import pysam
import pytest

from bpnetz.cli.bam2bw import main as bam2bw_main
from bpnetz.errors import InputError
from bpnetz.preprocess.bam2bw import reads_to_bigwigs

SIZES = {"chrA": 400, "chrB": 250}
CONSUMES_REFERENCE = set("MDN=X")

# hand-made reads: (chrom, pos, cigar, reverse, extra flags, mapq)
SPECIAL = [
    ("chrA", 10, "20M", False, 0, 60),
    ("chrA", 10, "15M", False, 0, 60),        # positional duplicate of the read above (same 5' end)
    ("chrA", 10, "20M", False, 0x400, 60),    # flagged duplicate
    ("chrA", 50, "3S17M", True, 0, 60),       # reverse, soft clip at the start: 5' = 50 + 17 - 1
    ("chrA", 80, "10M2D8M4S", True, 0, 60),   # reverse, deletion counts, trailing soft clip excluded
    ("chrA", 120, "5S20M", False, 0, 60),     # forward, soft clip: 5' = 120
    ("chrA", 150, "20M", False, 0, 5),        # low MAPQ
    ("chrA", 160, "20M", False, 0x4, 0),      # unmapped
    ("chrA", 170, "20M", False, 0x100, 60),   # secondary
    ("chrA", 180, "20M", False, 0x800, 60),   # supplementary
    ("chrA", 190, "20M", False, 0x200, 60),   # QC fail
    ("chrA", 200, "20M", False, 0x1 | 0x40, 60),        # paired, read 1: counted
    ("chrA", 230, "20M", True, 0x1 | 0x80, 60),         # paired, read 2: skipped
    ("chrB", 0, "10M", False, 0, 60),         # first base of a chromosome
    ("chrB", 240, "10M", True, 0, 60),        # 5' end on the last base
    ("chrB", 240, "10M", True, 0, 60),        # its duplicate
]


def _reference_span(cigar: str) -> int:
    return sum(int(n) for n, op in re.findall(r"(\d+)([MIDNSHP=X])", cigar) if op in CONSUMES_REFERENCE)


def _read_length(cigar: str) -> int:
    return sum(int(n) for n, op in re.findall(r"(\d+)([MIDNSHP=X])", cigar) if op in "MIS=X")


def _reads() -> list[tuple]:
    rng = random.Random(7)
    reads = list(SPECIAL)
    for _ in range(300):
        chrom = rng.choice(list(SIZES))
        cigar = rng.choice(["25M", "2S23M", "12M1D12M", "20M5S", "10M3I12M"])
        pos = rng.randrange(0, SIZES[chrom] - _reference_span(cigar))
        flags = rng.choice([0, 0, 0, 0x400, 0x4])
        reads.append((chrom, pos, cigar, rng.random() < 0.5, flags, rng.choice([0, 20, 40, 60])))
    return reads


def _write_bam(path: Path, reads: list[tuple], *, header_sizes: bool = True) -> None:
    header = {"HD": {"VN": "1.6", "SO": "unsorted"}}
    if header_sizes:
        header["SQ"] = [{"SN": c, "LN": n} for c, n in SIZES.items()]
    names = list(SIZES)
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i, (chrom, pos, cigar, reverse, flags, mapq) in enumerate(reads):
            seg = pysam.AlignedSegment(out.header)
            seg.query_name = f"r{i}"
            seg.query_sequence = "A" * _read_length(cigar)
            seg.flag = flags | (0x10 if reverse else 0)
            seg.reference_id = names.index(chrom)
            seg.reference_start = pos
            seg.mapping_quality = mapq
            seg.cigarstring = cigar
            seg.query_qualities = pysam.qualitystring_to_array("I" * _read_length(cigar))
            out.write(seg)


def _expected(reads, *, min_mapq=0, keep_duplicates=False, shift=0) -> dict[str, dict[str, np.ndarray]]:
    """Count 5' ends with plain Python from the read list (the documented rules, written independently)."""
    counts = {s: {c: np.zeros(n, dtype=np.int64) for c, n in SIZES.items()} for s in "+-"}
    seen = set()
    for chrom, pos, cigar, reverse, flags, mapq in reads:
        if flags & (0x4 | 0x100 | 0x800 | 0x200) or (flags & 0x1 and flags & 0x80):
            continue
        if (flags & 0x400 and not keep_duplicates) or mapq < min_mapq:
            continue
        strand = "-" if reverse else "+"
        five = pos + _reference_span(cigar) - 1 if reverse else pos
        if not keep_duplicates:
            if (chrom, strand, five) in seen:
                continue
            seen.add((chrom, strand, five))
        five += -shift if reverse else shift
        if 0 <= five < SIZES[chrom]:
            counts[strand][chrom][five] += 1
    return counts


def _bigwig(path: Path) -> dict[str, np.ndarray]:
    with pyBigWig.open(str(path)) as bw:
        assert bw.chroms() == SIZES
        return {c: np.nan_to_num(np.asarray(bw.values(c, 0, n))) for c, n in SIZES.items()}


@pytest.fixture(scope="module")
def reads() -> list[tuple]:
    return _reads()


@pytest.fixture(scope="module")
def bams(tmp_path_factory, reads) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bam")
    unsorted = root / "reads.bam"
    _write_bam(unsorted, reads)
    indexed = root / "sorted.bam"
    pysam.sort("-o", str(indexed), str(unsorted))
    pysam.index(str(indexed))
    return {"unsorted": unsorted, "indexed": indexed}


@pytest.mark.parametrize("which", ["unsorted", "indexed"])
def test_stranded_counts_equal_independent_count(tmp_path, bams, reads, which):
    result = reads_to_bigwigs([bams[which]], tmp_path / "out")
    expected = _expected(reads)
    assert [p.name for p in result.outputs] == ["out.plus.bw", "out.minus.bw"]
    for strand, path in zip("+-", result.outputs):
        observed = _bigwig(path)
        for chrom in SIZES:
            np.testing.assert_array_equal(observed[chrom], expected[strand][chrom], err_msg=f"{strand}{chrom}")
    # spot checks of the documented conventions
    minus = _bigwig(tmp_path / "out.minus.bw")
    assert minus["chrA"][66] >= 1 and minus["chrA"][99] >= 1  # soft clip excluded, deletion included
    assert minus["chrB"][249] == 1  # a duplicated reverse read counted once
    assert result.ends_counted == sum(v.sum() for s in expected.values() for v in s.values())


def test_unstranded_shift_mapq_keep_duplicates(tmp_path, bams, reads):
    reads_to_bigwigs([bams["unsorted"]], tmp_path / "u", unstranded=True, shift=3, min_mapq=30,
                     keep_duplicates=True)
    expected = _expected(reads, min_mapq=30, keep_duplicates=True, shift=3)
    observed = _bigwig(tmp_path / "u.bw")
    for chrom in SIZES:
        np.testing.assert_array_equal(observed[chrom], expected["+"][chrom] + expected["-"][chrom])


def test_replicates_are_summed(tmp_path, bams, reads):
    reads_to_bigwigs([bams["unsorted"], bams["indexed"]], tmp_path / "two")
    expected = _expected(reads)
    for strand, name in (("+", "two.plus.bw"), ("-", "two.minus.bw")):
        observed = _bigwig(tmp_path / name)
        for chrom in SIZES:
            np.testing.assert_array_equal(observed[chrom], 2 * expected[strand][chrom])


def _write_sizes(path: Path) -> Path:
    path.write_text("".join(f"{c}\t{n}\n" for c, n in SIZES.items()))
    return path


def test_tagalign_and_fragments(tmp_path):
    sizes = _write_sizes(tmp_path / "chrom.sizes")
    tag_rows = [("chrA", 5, 30, "+"), ("chrA", 5, 40, "+"), ("chrA", 100, 125, "-"), ("chrB", 200, 250, "-"),
                ("chrUn", 1, 20, "+")]  # unknown chromosome: skipped
    tag = tmp_path / "reads.tagAlign"
    tag.write_text("".join(f"{c}\t{s}\t{e}\tN\t1000\t{st}\n" for c, s, e, st in tag_rows))
    result = reads_to_bigwigs([tag], tmp_path / "tag", chrom_sizes=sizes)
    plus, minus = _bigwig(tmp_path / "tag.plus.bw"), _bigwig(tmp_path / "tag.minus.bw")
    assert plus["chrA"][5] == 1 and plus["chrA"].sum() == 1  # duplicate 5' end counted once
    assert minus["chrA"][124] == 1 and minus["chrB"][249] == 1 and minus["chrA"].sum() == 1
    assert result.skipped["chromosome not in chrom sizes"] == 1

    frag = tmp_path / "fragments.tsv"
    frag.write_text("chrA\t10\t60\tBC1\t3\nchrA\t10\t80\tBC2\t1\nchrB\t0\t250\tBC1\t2\n")
    reads_to_bigwigs([frag], tmp_path / "frag", chrom_sizes=sizes, unstranded=True, keep_duplicates=True)
    both = _bigwig(tmp_path / "frag.bw")
    expected = {c: np.zeros(n) for c, n in SIZES.items()}
    for c, s, e, k in (("chrA", 10, 60, 3), ("chrA", 10, 80, 1), ("chrB", 0, 250, 2)):
        expected[c][s] += k
        expected[c][e - 1] += k
    for chrom in SIZES:
        np.testing.assert_array_equal(both[chrom], expected[chrom])


def test_errors_are_input_errors(tmp_path, reads):
    no_header = tmp_path / "noheader.bam"
    _write_bam(no_header, [], header_sizes=False)
    with pytest.raises(InputError, match="chromosome sizes"):
        reads_to_bigwigs([no_header], tmp_path / "x")
    bed = tmp_path / "reads.bed"
    bed.write_text("chrA\t1\t20\tN\t0\t+\n")
    with pytest.raises(InputError, match="--chrom-sizes"):
        reads_to_bigwigs([bed], tmp_path / "x")
    bad = tmp_path / "bad.tagAlign"
    bad.write_text("chrA\tone\t20\tN\t0\t+\n")
    with pytest.raises(InputError, match="bad.tagAlign"):
        reads_to_bigwigs([bad], tmp_path / "x", chrom_sizes=_write_sizes(tmp_path / "s"))
    with pytest.raises(InputError, match="does not exist"):
        reads_to_bigwigs([tmp_path / "missing.bam"], tmp_path / "x")
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".x*"))


def test_cli(tmp_path, bams, capsys):
    assert bam2bw_main([str(bams["indexed"]), "-o", str(tmp_path / "cli"), "--min-mapq", "10"]) == 0
    assert "5' ends counted" in capsys.readouterr().out
    assert (tmp_path / "cli.plus.bw").is_file() and (tmp_path / "cli.minus.bw").is_file()
