"""Variant files and allele windows, checked against a hand-written FASTA read back with pyfaidx: every edge case
(REF mismatch, N in the window, near a chromosome end, multi-allelic, unknown chromosome, symbolic alleles,
indels) ends as one row with its status and reason."""

from __future__ import annotations

import gzip

import numpy as np
import pyfaidx
import pytest

from bpnetz.errors import InputError
from bpnetz.genome.sequence import decode
from bpnetz.insilico.alleles import OK, allele_windows, read_variants

INPUT_LEN = 40


@pytest.fixture()
def genome(tmp_path):
    rng = np.random.default_rng(1)
    chr1 = "".join(rng.choice(list("ACGT"), 300))
    chr2 = "".join(rng.choice(list("ACGT"), 120))
    chr2 = chr2[:70] + "N" + chr2[71:]  # an N 10 bp right of position 61
    path = tmp_path / "g.fa"
    path.write_text(f">chr1\n{chr1}\n>chr2\n{chr2}\n")
    return path, {"chr1": chr1, "chr2": chr2}


def write_vcf(path, rows, compress=False):
    text = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "".join(
        "\t".join(map(str, r)) + "\t.\t.\t.\n" for r in rows)
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def test_every_edge_case_gets_its_reason(genome, tmp_path):
    fa, seqs = genome
    c1 = seqs["chr1"]
    rows = [("chr1", 101, "snv", c1[100], "A" if c1[100] != "A" else "C"),
            ("chr1", 121, "multi", c1[120], ",".join(b for b in "ACGT" if b != c1[120])),
            ("chr1", 151, "mismatch", "ACGT"[("ACGT".index(c1[150]) + 1) % 4], "A"),
            ("chr1", 5, "edge", c1[4], "A" if c1[4] != "A" else "C"),
            ("chrX", 50, "unknown", "A", "C"),
            ("chr2", 61, "n_window", seqs["chr2"][60], "A" if seqs["chr2"][60] != "A" else "C"),
            ("chr1", 171, "symbolic", c1[170], "<DEL>"),
            ("chr1", 181, "iupac", c1[180], "R"),
            ("chr1", 201, "deletion", c1[200:204], c1[200]),
            ("chr1", 211, "insertion", c1[210], c1[210] + "GGG")]
    variants = read_variants(write_vcf(tmp_path / "v.vcf.gz", rows, compress=True))
    windows = allele_windows(variants, fa, INPUT_LEN)
    status = {(v.id, v.allele): v.status for v in variants}
    assert len(variants) == len(rows) + 2  # the tri-allelic site is split into three rows
    assert [status[("multi", k)] for k in (1, 2, 3)] == [OK] * 3
    assert status[("snv", 1)] == status[("deletion", 1)] == status[("insertion", 1)] == OK
    expected = {"mismatch": "ref_mismatch", "edge": "near_chrom_end", "unknown": "unknown_chrom",
                "n_window": "n_in_window", "symbolic": "unsupported_allele", "iupac": "non_acgt_allele"}
    assert {k: status[(k, 1)] for k in expected} == expected
    mismatch = next(v for v in variants if v.id == "mismatch")
    assert c1[150] in mismatch.reason and "chr1:151" in mismatch.reason
    assert sorted(variants[i].id for i in windows.index) == sorted(
        ["snv", "multi", "multi", "multi", "deletion", "insertion"])


def test_windows_match_the_fasta(genome, tmp_path):
    fa, seqs = genome
    c1 = seqs["chr1"]
    rows = [("chr1", 101, "snv", c1[100], "T" if c1[100] != "T" else "G"),
            ("chr1", 201, "deletion", c1[200:204], c1[200]),
            ("chr1", 211, "insertion", c1[210], c1[210] + "GGG")]
    variants = read_variants(write_vcf(tmp_path / "v.vcf", rows))
    windows = allele_windows(variants, fa, INPUT_LEN)
    direct = pyfaidx.Fasta(str(fa))
    half = INPUT_LEN // 2
    for k, i in enumerate(windows.index):
        v = variants[i]
        p = v.pos - 1
        ref = str(direct["chr1"][p - half:p - half + INPUT_LEN])
        alt = (str(direct["chr1"][p - half:p]) + v.alt + str(direct["chr1"][p + len(v.ref):p + INPUT_LEN]))[:INPUT_LEN]
        assert decode(windows.ref[k]) == ref
        assert decode(windows.alt[k]) == alt
        assert decode(windows.ref[k][half:half + len(v.ref)]) == v.ref  # the variant's first base at the centre
        assert windows.in_start[k] == p - half


def test_tsv_input_and_chrom_sizes(genome, tmp_path):
    fa, seqs = genome
    tsv = tmp_path / "v.tsv"
    tsv.write_text(f"id\tchrom\tpos\tref\talt\na\tchr1\t101\t{seqs['chr1'][100]}\tA\n"
                   f"b\tchr2\t30\t{seqs['chr2'][29]}\tC\n")
    variants = read_variants(tsv)
    assert [(v.id, v.chrom, v.pos) for v in variants] == [("a", "chr1", 101), ("b", "chr2", 30)]
    allele_windows(variants, fa, INPUT_LEN, listed={"chr1": 300})
    assert variants[1].status == "unknown_chrom" and "chromosome sizes" in variants[1].reason


@pytest.mark.parametrize("text, message", [
    ("chrom\tposition\tref\talt\nchr1\t5\tA\tC\n", r"lacks the column\(s\) pos"),
    ("chrom\tpos\tref\talt\nchr1\tfive\tA\tC\n", "line 2: POS 'five'"),
    ("chrom\tpos\tref\talt\nchr1\t5\tA\n", "line 2: 3 fields"),
])
def test_malformed_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_variants(path)
