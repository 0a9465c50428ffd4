"""gc-reference / gc-background against direct pyfaidx counts and plain-Python overlap checks."""

from __future__ import annotations

import numpy as np
import pyfaidx
import pytest
from scipy.stats import ks_2samp

from bpnetz.cli.gc_background import main as gc_background_main
from bpnetz.cli.gc_reference import main as gc_reference_main
from bpnetz.errors import InputError
from bpnetz.preprocess.gc import gc_background, gc_reference

SIZES = {"chr1": 120_000, "chr2": 80_000}
FLANK = 250
N_RUN = ("chr2", 30_000, 31_200)


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """A FASTA with GC domains (0.3 … 0.7, 5-20 kb) and one N run; peaks placed mostly in GC-rich domains."""
    root = tmp_path_factory.mktemp("genome")
    rng = np.random.default_rng(11)
    records, peaks = [], []
    for chrom, size in SIZES.items():
        bounds = np.concatenate([[0], np.cumsum(rng.integers(5_000, 20_000, 40))])
        bounds = np.concatenate([bounds[bounds < size], [size]])
        level = np.repeat(rng.uniform(0.3, 0.7, len(bounds) - 1), np.diff(bounds))
        strong = rng.random(size) < level
        seq = np.where(strong, np.where(rng.random(size) < 0.5, "G", "C"), np.where(rng.random(size) < 0.5, "a", "T"))
        if chrom == N_RUN[0]:
            seq[N_RUN[1]:N_RUN[2]] = "N"
        records.append(f">{chrom}\n" + "\n".join("".join(seq[i:i + 70]) for i in range(0, size, 70)) + "\n")
        weight = np.where(level > 0.55, 1.0, 0.02)[1000:size - 1000]
        summits = np.sort(rng.choice(np.arange(1000, size - 1000), 12, replace=False, p=weight / weight.sum()))
        # spread peaks so they do not exclude most of the genome
        summits = summits[np.concatenate([[True], np.diff(summits) > 2000])]
        peaks += [f"{chrom}\t{s - 40}\t{s + 60}\tp\t0\t.\t1\t-1\t-1\t40\n" for s in summits]
    fasta = root / "genome.fa"
    fasta.write_text("".join(records))
    (root / "chrom.sizes").write_text("".join(f"{c}\t{n}\n" for c, n in SIZES.items()))
    (root / "peaks.narrowPeak").write_text("".join(peaks))
    return root


def _direct_gc(fasta: pyfaidx.Fasta, chrom: str, start: int, end: int) -> tuple[float, int]:
    seq = str(fasta[chrom][start:end]).upper()
    called = sum(seq.count(b) for b in "ACGT")
    return (seq.count("G") + seq.count("C")) / max(called, 1), len(seq) - called


def _read_bed(path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_gc_reference_equals_direct_counts(genome, tmp_path):
    path, summary = gc_reference(genome / "genome.fa", tmp_path / "ref", chrom_sizes=genome / "chrom.sizes",
                                 inputlen=500, stride=100)
    assert path == tmp_path / "ref.bed" and "windows" in summary
    rows = _read_bed(path)
    fasta = pyfaidx.Fasta(str(genome / "genome.fa"))
    got = {(r[0], int(r[1])): (int(r[2]), float(r[3])) for r in rows}
    expected_starts = set()
    for chrom, size in SIZES.items():
        for start in range(0, size - 500 + 1, 100):
            gc, n = _direct_gc(fasta, chrom, start, start + 500)
            if n <= 0.1 * 500:
                expected_starts.add((chrom, start))
                end, value = got[(chrom, start)]
                assert end == start + 500 and value == pytest.approx(gc, abs=5e-5)
    assert set(got) == expected_starts  # N-rich windows skipped, nothing past a chromosome end
    assert ("chr2", 30_000) not in got and ("chr1", SIZES["chr1"] - 500) in got


@pytest.fixture(scope="module")
def background(genome, tmp_path_factory):
    out = tmp_path_factory.mktemp("bg")
    ref, _ = gc_reference(genome / "genome.fa", out / "ref", inputlen=2 * FLANK, stride=50)
    result = gc_background(genome / "peaks.narrowPeak", genome / "genome.fa", out, ref_gc_bed=ref,
                           flank_size=FLANK, neg_to_pos_ratio=2, output_prefix="gc_negatives")
    return out, result


def test_negatives_match_gc_and_avoid_peaks(genome, background):
    out, result = background
    fasta = pyfaidx.Fasta(str(genome / "genome.fa"))
    peaks = [(r[0], int(r[1]), int(r[2]), int(r[1]) + int(r[9])) for r in _read_bed(genome / "peaks.narrowPeak")]
    negatives = _read_bed(out / "gc_negatives.bed")
    assert len(negatives) == 2 * len(peaks) == result.n_negatives
    order = [list(SIZES).index(r[0]) * 10**9 + int(r[1]) for r in negatives]
    assert order == sorted(order)
    assert len({(r[0], r[1]) for r in negatives}) == len(negatives)  # drawn without replacement
    for r in negatives:
        chrom, start, end = r[0], int(r[1]), int(r[2])
        assert len(r) == 10 and end - start == 2 * FLANK and int(r[9]) == FLANK and end <= SIZES[chrom]
        for p_chrom, p_start, p_end, summit in peaks:
            if p_chrom == chrom:
                assert end <= p_start or start >= p_end, "negative overlaps a peak interval"
                assert end <= summit - FLANK or start >= summit + FLANK, "negative overlaps a peak window"
    peak_gc = np.array([_direct_gc(fasta, c, s - FLANK, s + FLANK)[0] for c, _, _, s in peaks])
    fg = _read_bed(out / "foreground.gc.bed")
    np.testing.assert_allclose([float(r[3]) for r in fg], peak_gc, atol=5e-5)
    neg_gc = np.array([_direct_gc(fasta, r[0], int(r[1]), int(r[2]))[0] for r in negatives])
    edges = (np.arange(102) - 0.5) / 100
    p = np.histogram(peak_gc, edges)[0] / len(peak_gc)
    q = np.histogram(neg_gc, edges)[0] / len(neg_gc)
    tv = 0.5 * np.abs(p - q).sum()
    assert tv <= 0.1 and result.tv_distance == pytest.approx(tv, abs=1e-9)
    assert result.ks_statistic == pytest.approx(ks_2samp(peak_gc, neg_gc).statistic, abs=1e-9)
    genome_gc = np.array([float(r[3]) for r in _read_bed(out / "ref.bed")])
    tv_genome = 0.5 * np.abs(p - np.histogram(genome_gc, edges)[0] / len(genome_gc)).sum()
    assert tv_genome > 0.3  # the peaks' GC differs from the genome's, so matching did the work
    assert (out / "gc_negatives_compared_with_foreground.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    candidates = {(r[0], r[1]) for r in _read_bed(out / "candidate.negatives.bed")}
    assert {(r[0], r[1]) for r in negatives} <= candidates


def test_deterministic_and_on_the_fly_reference(genome, background, tmp_path):
    out, _ = background
    first = (out / "gc_negatives.bed").read_text()
    again = gc_background(genome / "peaks.narrowPeak", genome / "genome.fa", tmp_path / "a", flank_size=FLANK,
                          neg_to_pos_ratio=2, output_prefix="gc_negatives", stride=50)
    assert (tmp_path / "a" / "gc_negatives.bed").read_text() == first  # reference computed on the fly
    other = gc_background(genome / "peaks.narrowPeak", genome / "genome.fa", tmp_path / "b", flank_size=FLANK,
                          neg_to_pos_ratio=2, output_prefix="gc_negatives", stride=50, seed=99)
    assert (tmp_path / "b" / "gc_negatives.bed").read_text() != first
    assert again.n_negatives == other.n_negatives


def test_cli_reference_flags(genome, tmp_path, capsys):
    assert gc_reference_main(["-g", str(genome / "genome.fa"), "-c", str(genome / "chrom.sizes"),
                              "-o", str(tmp_path / "gcref"), "-f", str(2 * FLANK), "-s", "100"]) == 0
    assert gc_background_main(["-d", str(tmp_path / "out"), "-i", str(genome / "peaks.narrowPeak"),
                               "-g", str(genome / "genome.fa"), "-rgb", str(tmp_path / "gcref.bed"),
                               "-fl", str(FLANK), "-npr", "1", "-o", "neg", "-f", "fg.bed",
                               "-c", "cand.bed"]) == 0
    assert "total variation" in capsys.readouterr().out
    for name in ("neg.bed", "neg_compared_with_foreground.png", "fg.bed", "cand.bed"):
        assert (tmp_path / "out" / name).is_file()


def test_errors(genome, tmp_path):
    bad_peaks = tmp_path / "peaks.bed"
    bad_peaks.write_text("chrZ\t100\t200\tp\t0\t.\t1\t-1\t-1\t50\n")
    with pytest.raises(InputError, match="chrZ"):
        gc_background(bad_peaks, genome / "genome.fa", tmp_path, flank_size=FLANK)
    short = tmp_path / "short.bed"
    short.write_text("chr1\t100\t200\n")
    with pytest.raises(InputError, match="line 1"):
        gc_background(short, genome / "genome.fa", tmp_path, flank_size=FLANK)
    sizes = tmp_path / "sizes"
    sizes.write_text("chr1\t999\n")
    with pytest.raises(InputError, match="length 999"):
        gc_reference(genome / "genome.fa", tmp_path / "r", chrom_sizes=sizes)
    bad_ref = tmp_path / "ref.bed"
    bad_ref.write_text("chr1\t0\t500\t1.7\n")
    with pytest.raises(InputError, match="GC fraction"):
        gc_background(genome / "peaks.narrowPeak", genome / "genome.fa", tmp_path, ref_gc_bed=bad_ref,
                      flank_size=FLANK)
