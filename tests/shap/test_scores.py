"""Score files: exact h5 layout, untruncated chromosome names, tfmodisco-lite's own reader, BED and bigWig."""

from pathlib import Path

import h5py
import numpy as np
import pyBigWig
import pytest

from bpnetz.shap.scores import (
    write_score_bigwig,
    write_score_files,
    write_score_h5,
    write_scored_bed,
)

LONG = "chrUn_KI270742v1_a_rather_long_contig_name"
CHROMS = ["chr1", LONG, "chr2_random_alt", "chr1"]
L = 40


def score_arrays(n=len(CHROMS), seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 5, size=(n, L))
    onehot = np.vstack([np.eye(4), np.zeros((1, 4))])[codes].astype(np.float32)
    hyp = rng.normal(size=(n, L, 4)).astype(np.float32)
    start = np.array([100, 5_000_000_000, 0, 300][:n], dtype=np.int64)  # beyond int32 survives too
    return onehot, hyp, start, start + L


def test_h5_has_the_reference_keys_shapes_and_full_names(tmp_path: Path):
    onehot, hyp, start, end = score_arrays()
    path = write_score_h5(tmp_path / "counts_scores.h5", CHROMS, start, end, hyp, onehot)
    with h5py.File(path, "r") as f:
        assert set(f) == {"coords_chrom", "coords_start", "coords_end", "hyp_scores", "input_seqs"}
        assert [c.decode() for c in f["coords_chrom"][:]] == CHROMS
        assert f["coords_chrom"].asstr()[1] == LONG
        np.testing.assert_array_equal(f["coords_start"][:], start)
        np.testing.assert_array_equal(f["coords_end"][:], end)
        assert f["hyp_scores"].shape == f["input_seqs"].shape == (4, L, 4)
        assert f["hyp_scores"].dtype == np.float32
        np.testing.assert_array_equal(f["hyp_scores"][:], hyp)
        np.testing.assert_array_equal(f["input_seqs"][:], onehot)
    assert [p.name for p in tmp_path.iterdir()] == ["counts_scores.h5"]  # no temporary left behind


def test_tfmodisco_lite_reads_the_file_with_its_own_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run `modisco motifs --h5py` up to the point where it hands the arrays to TF-MoDISco, and catch them."""
    from click.testing import CliRunner
    from modiscolite import cli, precompile, tfmodisco

    onehot, hyp, start, end = score_arrays()
    path = write_score_h5(tmp_path / "profile_scores.h5", CHROMS, start, end, hyp, onehot)
    received = {}

    class Received(Exception):
        pass

    def capture(*, one_hot, hypothetical_contribs, **_):
        received.update(one_hot=one_hot, hyp=hypothetical_contribs)
        raise Received

    monkeypatch.setattr(precompile, "start", lambda *a, **k: None)  # no numba compile children for a read test
    monkeypatch.setattr(tfmodisco, "TFMoDISco", capture)
    result = CliRunner().invoke(cli.cli, ["motifs", "--h5py", str(path), "-n", "100", "-w", "20",
                                          "-o", str(tmp_path / "modisco.h5")])
    assert isinstance(result.exception, Received), result.output
    window = slice(L // 2 - 10, L // 2 + 10)
    np.testing.assert_array_equal(received["one_hot"], onehot[:, window])
    np.testing.assert_array_equal(received["hyp"], hyp[:, window])


def test_scored_bed_is_narrowpeak_with_the_summit_at_the_centre(tmp_path: Path):
    _, _, start, end = score_arrays()
    path = write_scored_bed(tmp_path / "peaks_valid_scores.bed", CHROMS, start, end, ["a", "b", "c", "d"])
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert [r[0] for r in rows] == CHROMS
    assert all(len(r) == 10 for r in rows)
    assert [(int(r[1]), int(r[2])) for r in rows] == list(zip(start.tolist(), end.tolist()))
    assert [r[3] for r in rows] == ["a", "b", "c", "d"]
    assert [int(r[1]) + int(r[9]) for r in rows] == ((start + end) // 2).tolist()


def test_bigwig_splits_overlaps_at_the_midpoint_between_centres(tmp_path: Path):
    sizes = {"chr1": 200, "chrX_long_name_beyond_eight": 60}
    chrom = ["chr1", "chr1", "chrX_long_name_beyond_eight"]
    start = np.array([10, 30, 40])  # the last window runs 20 bases past its chromosome's end
    values = np.arange(3 * L, dtype=np.float32).reshape(3, L) + 0.5
    path = write_score_bigwig(tmp_path / "w{ith}braces.bw", sizes, chrom, start, values)
    assert path.name == "w{ith}braces.bw"
    expected = {"chr1": np.full(200, np.nan), "chrX_long_name_beyond_eight": np.full(60, np.nan)}
    for name, size in sizes.items():  # each base: the window with the nearest centre, ties to the right
        for pos in range(size):
            covering = [i for i in range(3) if chrom[i] == name and start[i] <= pos < start[i] + L]
            if covering:
                best = min(covering, key=lambda i: (abs(pos - (start[i] + L // 2)), -i))
                expected[name][pos] = values[best, pos - start[best]]
    with pyBigWig.open(str(path)) as bw:
        assert bw.chroms() == sizes
        for name, size in sizes.items():
            np.testing.assert_array_equal(np.array(bw.values(name, 0, size)), expected[name])


def test_write_score_files_writes_every_output(tmp_path: Path):
    onehot, hyp, _, _ = score_arrays(3)
    start = np.array([100, 2000, 0])
    end = start + L
    projected = hyp * onehot
    scores = {"counts": (hyp, projected), "profile": (2 * hyp, 2 * projected)}
    sizes = {"chr1": 1000, LONG: 6000, "chr2_random_alt": 500}
    files = write_score_files(tmp_path, CHROMS[:3], start, end, onehot, scores, chrom_sizes=sizes)
    assert {k: p.name for k, p in files.items()} == {
        "counts_h5": "counts_scores.h5", "profile_h5": "profile_scores.h5", "bed": "peaks_valid_scores.bed",
        "counts_bw": "counts_scores.bw", "profile_bw": "profile_scores.bw"}
    with h5py.File(files["profile_h5"], "r") as f:
        np.testing.assert_array_equal(f["hyp_scores"][:], 2 * hyp)
    with pyBigWig.open(str(files["counts_bw"])) as bw:
        for i, name in enumerate(CHROMS[:3]):
            got = np.array(bw.values(name, int(start[i]), int(end[i])), dtype=np.float32)
            np.testing.assert_allclose(got, (hyp[i] * onehot[i]).sum(axis=1), rtol=1e-6)


def test_mismatched_rows_raise_and_leave_nothing(tmp_path: Path):
    onehot, hyp, start, end = score_arrays()
    with pytest.raises(ValueError, match="rows"):
        write_score_h5(tmp_path / "x.h5", CHROMS[:2], start, end, hyp, onehot)
    with pytest.raises(ValueError, match=r"\(N, L, 4\)"):
        write_score_h5(tmp_path / "x.h5", CHROMS, start, end, hyp[:, :, :2], onehot)
    assert list(tmp_path.iterdir()) == []
