"""bigWig writer: values read back with pyBigWig equal the nearest-summit locus's values, base by base."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

from bpnetz.errors import InputError
from bpnetz.genome.bigwig import write_track_bigwigs

SIZES = {"chrB": 300, "chrA": 250, "chrEmpty": 50}  # deliberately not alphabetical
L = 40


def _expected(chrom, size, chroms, starts, values, t):
    """Independent rule: among windows covering a base, the one whose centre is nearest (ties -> right,
    identical windows -> first given) supplies the value; NaN where nothing covers the base."""
    out = np.full(size, np.nan)
    for x in range(size):
        best = None
        for i, (c, s) in enumerate(zip(chroms, starts)):
            if c != chrom or not s <= x < s + L:
                continue
            key = (abs(x - (s + L // 2)), -(s + L // 2), i)
            if best is None or key < best[0]:
                best = (key, i)
        if best is not None:
            out[x] = values[best[1], x - starts[best[1]], t]
    return out


def test_bigwig_round_trip_with_overlaps_duplicates_and_chrom_ends(tmp_path):
    rng = np.random.default_rng(0)
    chroms = ["chrA", "chrB", "chrA", "chrA", "chrB", "chrA", "chrB", "chrB", "chrA"]
    # overlaps at odd and even distances, a 3-way overlap, a duplicate, windows past both chromosome ends
    starts = np.array([100, 10, 125, 70, 290, 131, 23, 10, -15])
    values = rng.gamma(1.0, size=(len(chroms), L, 2))
    paths = write_track_bigwigs(str(tmp_path / "pred_track_{i}_{name}.bw"), SIZES, chroms, starts, values,
                                ["x/+", "x/-"])
    assert [p.name for p in paths] == ["pred_track_0_x_+.bw", "pred_track_1_x_-.bw"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    for t, path in enumerate(paths):
        bw = pyBigWig.open(str(path))
        assert list(bw.chroms().items()) == list(SIZES.items())
        for chrom in ("chrA", "chrB"):
            expected = _expected(chrom, SIZES[chrom], chroms, starts, values, t)
            got = np.array(bw.values(chrom, 0, SIZES[chrom]))
            np.testing.assert_allclose(got, expected, rtol=1e-6)  # NaN where uncovered, on both sides
            # each base written once: the stored intervals tile the covered bases without overlap
            intervals = bw.intervals(chrom)
            assert sum(e - s for s, e, _ in intervals) == int(np.isfinite(expected).sum())
        bw.close()


def test_unknown_chromosome_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="chrZ"):
        write_track_bigwigs(str(tmp_path / "t{i}.bw"), SIZES, ["chrZ"], np.array([0]), np.zeros((1, L, 1)), ["t"])
    assert list(tmp_path.iterdir()) == []
