"""The builder's numpy bigWig and FASTA readers against pyBigWig and pyfaidx reads of the same files."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pyfaidx
import pytest

from bpnetz.errors import InputError
from bpnetz.genome import bigwig, fasta
from bpnetz.genome.bigwig_reader import open_reader, windows_into
from tests.build.tiny_inputs import write_fasta


def _write_sections(path, sizes: dict[str, int], rng: np.random.Generator) -> None:
    """A bigWig with all three section types (pyBigWig picks them by the addEntries form) and multi-base runs."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()), maxZooms=2)
    for k, (chrom, size) in enumerate(sizes.items()):
        if k % 4 == 3:
            continue  # a chromosome without values
        if k % 3 == 0:  # bedGraph: runs of different lengths with gaps
            ends = np.cumsum(rng.integers(1, 9, size // 2))
            ends = ends[ends < size]
            starts, ends = ends[:-1] + rng.integers(0, 2, len(ends) - 1), ends[1:]
            keep = starts < ends
            bw.addEntries([chrom] * int(keep.sum()), starts[keep].tolist(), ends=ends[keep].tolist(),
                          values=rng.poisson(3, int(keep.sum())).astype(float).tolist())
        elif k % 3 == 1:  # varStep, span 3
            starts = np.sort(rng.choice(size // 3, size // 6, replace=False)) * 3
            bw.addEntries(chrom, starts.tolist(), values=rng.gamma(2.0, size=len(starts)).tolist(), span=3)
        else:  # fixedStep, step 5, span 2
            n = (size - 10) // 5
            bw.addEntries(chrom, 7, values=rng.poisson(1, n).astype(float).tolist(), span=2, step=5)
    bw.close()


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    rng = np.random.default_rng(7)
    sizes = {f"c{i}": int(rng.integers(500, 3000)) for i in range(300)}  # an R-tree of two levels
    path = tmp_path_factory.mktemp("bw") / "s.bw"
    _write_sections(path, sizes, rng)
    return path, sizes


def test_reader_values_equal_pybigwig(sections):
    path, sizes = sections
    reader, bw = open_reader(path), pyBigWig.open(str(path))
    assert reader.chroms() == bw.chroms() == sizes
    rng = np.random.default_rng(0)
    for chrom in rng.choice(list(sizes), 60):
        lo = int(rng.integers(0, sizes[chrom] - 1))
        hi = int(rng.integers(lo + 1, sizes[chrom] + 1))
        np.testing.assert_array_equal(reader.values(chrom, lo, hi), bw.values(chrom, lo, hi, numpy=True))
    reader.close()


def test_windows_into_equal_pybigwig_windows_with_zeros(sections, tmp_path):
    """Two tracks read together into columns 1 and 2 of ``out``: each column equals pyBigWig's windows of its own
    file (0 where there is no value), per-window value counts and totals per track, column 0 untouched."""
    path, sizes = sections
    other = tmp_path / "other.bw"
    _write_sections(other, sizes, np.random.default_rng(8))
    rng = np.random.default_rng(1)
    chroms = rng.choice([c for i, c in enumerate(sizes) if i % 3 == 0], 400).astype(object)  # integer tracks
    length = 90
    starts = np.array([rng.integers(-40, sizes[c] - length + 40) for c in chroms])  # some cross the ends
    want = [bigwig.bigwig_windows(bigwig.open_bigwig(p), chroms, starts, length) for p in (path, other)]
    out = np.full((len(starts), length, 3), 99, dtype=np.uint16)
    calls = []

    def check(values):  # refuses the first values it is given (as a too-narrow dtype would): the spans' values
        calls.append(values)
        if len(calls) == 1:
            raise ValueError("too wide")

    covered, total = windows_into([open_reader(path), open_reader(other)], chroms, starts, length, out[:, :, 1:],
                                  [check, lambda values: None])
    assert (out[:, :, 0] == 99).all()  # only the given tracks' columns are written
    for t, track in enumerate(want):
        np.testing.assert_array_equal(out[:, :, 1 + t], np.nan_to_num(track, nan=0).astype(np.uint16))
        np.testing.assert_array_equal(covered[:, t], np.isfinite(track).sum(axis=1))  # per window
        np.testing.assert_array_equal(total[:, t], np.nansum(track.astype(np.float64), axis=1))
    assert not np.array_equal(out[:, :, 1], out[:, :, 2])  # two different files
    # the retry sees the values of the intervals inside windows only: their set is that of the windows' values
    first = want[0]
    assert len(calls) == 2 and set(calls[1].tolist()) == set(first[np.isfinite(first)].tolist())
    assert set(calls[0].tolist()) >= set(calls[1].tolist())


def test_damaged_data_is_an_input_error_naming_the_file(sections, tmp_path):
    path, sizes = sections
    data = bytearray(path.read_bytes())
    broken = tmp_path / "broken.bw"
    reader = open_reader(path)
    offset = int(reader._leaves(reader._chroms["c0"][0], 0, sizes["c0"])["offset"][0])
    data[offset:offset + 64] = bytes(64)  # the first data block's zlib stream
    broken.write_bytes(bytes(data))
    with pytest.raises(InputError, match="broken.bw"):
        open_reader(broken).values("c0", 0, sizes["c0"])


def test_not_a_bigwig_gets_no_reader(tmp_path):
    path = tmp_path / "fake.bw"
    path.write_bytes(b"\0" * 100)
    assert open_reader(path) is None


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_fasta_read_windows_equal_pyfaidx(tmp_path, newline):
    rng = np.random.default_rng(3)
    seqs = {f"s{i}": "".join(rng.choice(list("ACGTacgtNRn"), int(rng.integers(100, 900)))) for i in range(5)}
    path = tmp_path / "g.fa"
    write_fasta(path, seqs, width=37)
    if newline != "\n":
        path.write_bytes(path.read_bytes().replace(b"\n", newline.encode()))
    length = 60
    chroms = rng.choice(list(seqs), 200).astype(object)
    starts = np.array([rng.integers(0, len(seqs[c]) - length + 1) for c in chroms])
    handle = fasta.open_fasta(path)
    got = fasta.read_windows(handle, chroms, starts, length)
    np.testing.assert_array_equal(got, fasta.fasta_windows(handle, chroms, starts, length))
    direct = pyfaidx.Fasta(str(path))
    for i in range(0, len(starts), 25):
        lo = int(starts[i])
        text = direct[chroms[i]][lo:lo + length].seq
        assert text == seqs[chroms[i]][lo:lo + length]
        np.testing.assert_array_equal(got[i], [{"A": 0, "C": 1, "G": 2, "T": 3}.get(ch, 4) for ch in text.upper()])


@pytest.mark.parametrize("shuffled", [False, True])
def test_span_cut_keeps_the_intervals_overlapping_it(shuffled):
    """Sorted disjoint intervals are cut by binary searches, others by a mask: both keep exactly those overlapping."""
    from bpnetz.genome.bigwig_reader import _overlapping

    rng = np.random.default_rng(3)
    lengths, gaps = rng.integers(1, 6, 300), rng.integers(0, 4, 300)
    starts = np.cumsum(gaps + np.r_[0, lengths[:-1]])
    ends, values = starts + lengths, rng.random(300).astype(np.float32)
    order = rng.permutation(300) if shuffled else np.arange(300)
    parts = [(starts[order][i:i + 50], ends[order][i:i + 50], values[order][i:i + 50]) for i in range(0, 300, 50)]
    for lo, hi in [(0, 5), (int(starts[40]) + 1, int(ends[200])), (int(ends[10]), int(starts[120])),
                   (int(ends[-1]) - 1, int(ends[-1]) + 9)]:
        got = _overlapping(parts, lo, hi)
        want = sorted((int(s), int(e), float(v)) for s, e, v in zip(starts, ends, values, strict=True)
                      if e > lo and s < hi)
        assert sorted(zip(got[0].tolist(), got[1].tolist(), got[2].astype(float).tolist(), strict=True)) == want
