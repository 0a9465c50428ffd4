"""Region tiling and FASTA reads for whole-region predictions."""

from __future__ import annotations

import numpy as np
import pytest

from bpnetz.errors import InputError
from bpnetz.genome.sequence import decode
from bpnetz.predict.regions import (
    chromosome_regions,
    read_regions_bed,
    read_sequences,
    tile_regions,
)


@pytest.fixture()
def genome(tmp_path):
    rng = np.random.default_rng(0)
    seqs = {"chr2": "".join(rng.choice(list("ACGTacgtN"), size=503)),
            "chr1": "".join(rng.choice(list("ACGTRY"), size=251))}
    path = tmp_path / "g.fa"
    with open(path, "w") as fh:
        for name, seq in seqs.items():
            fh.write(f">{name} description\n")
            fh.writelines(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60))
    return path, seqs


def _expected_codes(seq: str, start: int, length: int) -> str:
    """Padding with N outside the chromosome, upper case, every non-ACGT letter as N."""
    out = []
    for x in range(start, start + length):
        base = seq[x].upper() if 0 <= x < len(seq) else "N"
        out.append(base if base in "ACGT" else "N")
    return "".join(out)


def test_tiles_cover_each_merged_region_centred(genome):
    _, seqs = genome
    sizes = {name: len(s) for name, s in seqs.items()}
    regions = [("chr1", 100, 150), ("chr2", 10, 40), ("chr2", 30, 75), ("chr2", 300, 301)]
    w = tile_regions(regions, sizes, input_len=31, output_len=20)
    assert list(w.chrom) == ["chr2"] * 5 + ["chr1"] * 3  # chromosome-size order, merged 10-75 -> 4 tiles, 7|8 overhang
    np.testing.assert_array_equal(w.out_start, [3, 23, 43, 63, 291, 95, 115, 135])
    np.testing.assert_array_equal(w.summit, w.out_start + 10)
    np.testing.assert_array_equal(w.in_start, w.summit - 15)
    # every region base is inside exactly one output window
    for chrom, start, end in regions:
        for x in range(start, end):
            assert sum(c == chrom and s <= x < s + 20 for c, s in zip(w.chrom, w.out_start)) == 1


def test_read_sequences_pads_with_n_past_chromosome_ends(genome):
    path, seqs = genome
    sizes = {name: len(s) for name, s in seqs.items()}
    w = tile_regions(chromosome_regions(["chr1", "chr2"], sizes), sizes, input_len=71, output_len=50)
    assert w.in_start.min() < 0 and (w.in_start + 71).max() > 503
    codes = read_sequences(path, w)
    assert codes.shape == (len(w), 71) and codes.dtype == np.uint8
    for i in range(len(w)):
        assert decode(codes[i]) == _expected_codes(seqs[w.chrom[i]], int(w.in_start[i]), 71)


def test_bad_inputs_are_input_errors(tmp_path, genome):
    path, seqs = genome
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\nchr1\t10\t20\tpeak\nchr1\tten\t20\n")
    with pytest.raises(InputError, match="line 3"):
        read_regions_bed(bed)
    bed.write_text("# header\nchr1\t10\t20\tpeak\n\nchr2 5 9\n")
    assert read_regions_bed(bed) == [("chr1", 10, 20), ("chr2", 5, 9)]
    bed.write_text("chr1\t10\t20\nchr1\t30\t30\n")
    with pytest.raises(InputError, match="line 2: interval chr1:30-30 is empty"):
        read_regions_bed(bed)
    with pytest.raises(InputError, match="chrM"):
        tile_regions([("chrM", 0, 10)], {"chr1": 251}, 31, 20)
    with pytest.raises(InputError, match="chr9"):
        chromosome_regions(["chr9"], {"chr1": 251})
    w = tile_regions([("chr3", 0, 10)], {"chr3": 100}, 31, 20)
    with pytest.raises(InputError, match="chr3 is not in the reference genome"):
        read_sequences(path, w)
