"""The simulator's knobs (bpnetz.simulate.variation): each checked against the files it writes, read back with
pyBigWig, pyfaidx and pyjaspar, by comparing simulations that differ in that knob only."""

from __future__ import annotations

import json
import math

import numpy as np
import pyBigWig
import pytest
from pyfaidx import Fasta

from bpnetz.cli import run_guarded
from bpnetz.cli import simulate as simulate_cli
from bpnetz.errors import InputError
from bpnetz.genome import motif as motif_lib
from bpnetz.simulate import signal
from bpnetz.simulate.variation import Variation, resolve_motifs


def _expected(exp, chrom: str = "chr1") -> np.ndarray:
    """Both strands' expected ChIP rates over a chromosome (truth bigWigs)."""
    values = []
    for strand in ("plus", "minus"):
        bw = pyBigWig.open(str(exp / f"truth/expected_{strand}.bw"))
        values.append(np.nan_to_num(bw.values(chrom, 0, bw.chroms(chrom), numpy=True)))
        bw.close()
    return np.stack(values)


def _sites(exp) -> list[list[str]]:
    return [line.split("\t") for line in (exp / "truth/sites.tsv").read_text().splitlines()[1:]]


def test_read_depth_scales_every_chip_rate(make_experiment):
    """Without control leak every expected ChIP rate is proportional to the depth: exactly 2x at depth 2."""
    one = make_experiment(variation=Variation(control_leak=0.0))
    two = make_experiment(variation=Variation(control_leak=0.0, depth=2.0))
    np.testing.assert_allclose(_expected(two), 2 * _expected(one), rtol=1e-5)


def test_control_leak_adds_its_share_of_the_control_rate(make_experiment):
    """The ChIP rate's control part is linear in the leak: E(0.8) − E(0) = 2·(E(0.4) − E(0)) > 0 somewhere."""
    none, default, double = (make_experiment(variation=Variation(control_leak=leak)) for leak in (0.0, 0.4, 0.8))
    part = _expected(default) - _expected(none)
    np.testing.assert_allclose(_expected(double) - _expected(none), 2 * part, atol=3 / 256)  # rates stored to 1/256
    assert part.min() >= -1e-6 and part.max() > 0.1


def test_strength_noise_multiplies_each_site_by_a_log_normal_factor(make_experiment):
    """Same sites (drawn before the noise), affinities multiplied by factors whose log has SD ≈ sigma, mean ≈ 1."""
    plain, noisy = make_experiment(), make_experiment(variation=Variation(strength_noise=0.8))
    a, b = _sites(plain), _sites(noisy)
    assert [row[:7] for row in a] == [row[:7] for row in b]
    bound = [i for i, row in enumerate(a) if row[6] == "1" and float(row[8]) > 0.05]
    ratio = np.array([float(b[i][8]) / float(a[i][8]) for i in bound])
    assert len(ratio) > 40
    assert 0.6 < np.std(np.log(ratio)) < 1.0 and 0.6 < ratio.mean() < 1.5


@pytest.mark.parametrize("shape, mode", [("nexus", 0.0), ("gaussian", 2.0), ("chipseq", None)])
def test_footprint_shapes(shape, mode):
    """Each kernel sums to 1 and peaks where its shape says: at the anchor, at 2·decay, at CHIPSEQ_BUMP's
    distance; a scale of 2 moves that peak twice as far."""
    motif = motif_lib.BUILTIN["gata"]
    for scale in (1.0, 2.0):
        kernel = signal.footprint_kernel(motif, shape, scale)
        assert kernel.sum() == pytest.approx(1.0)
        peak = mode * motif.decay if mode is not None else signal.CHIPSEQ_BUMP[0]
        assert int(np.argmax(kernel)) == pytest.approx(peak * scale, abs=1)


def test_a_chipseq_footprint_piles_reads_farther_from_the_site(make_experiment):
    """Around bound sites the + strand's expected reads peak ~60 bp upstream with chipseq, next to the motif
    with nexus (truth bigWigs, control leak 0 so only footprints and GC background remain)."""
    distances = {}
    for shape in ("nexus", "chipseq"):
        exp = make_experiment(variation=Variation(footprint=shape, control_leak=0.0))
        rates = _expected(exp)[0]
        starts = [int(r[1]) for r in _sites(exp) if r[0] == "chr1" and r[6] == "1" and float(r[8]) > 0.3]
        profile = np.mean([rates[s - 150:s][::-1] for s in starts if s > 150], axis=0)  # distance upstream
        distances[shape] = int(np.argmax(profile))
    assert distances["nexus"] < 10 and 50 < distances["chipseq"] < 80


def test_background_ratio_sets_the_number_of_negatives(make_experiment):
    exp = make_experiment(variation=Variation(background_ratio=1.0))
    n_peaks = len((exp / "data/peaks.bed").read_text().splitlines())
    n_background = len((exp / "data/background.bed").read_text().splitlines())
    assert n_background == math.ceil(n_peaks) + max(3, n_peaks // 50)
    ratio = json.loads((exp / "input_data.json").read_text())["0"]["background_loci"]["ratio"]
    assert ratio == [1.0]


def test_jaspar_matrices_are_planted_as_published(make_experiment):
    """jaspar:NAME plants the JASPAR matrix read here straight from pyjaspar's database; bound sites in
    genome.fa (pyfaidx) score at least the matrix's threshold."""
    from pyjaspar import jaspardb

    exp = make_experiment(motifs=("jaspar:CTCF", "jaspar:POU5F1::SOX2", "gata"))
    written = json.loads((exp / "truth/motifs.json").read_text())
    assert list(written) == ["CTCF", "Pou5f1::Sox2", "gata"]
    matrix = jaspardb(release="JASPAR2024").fetch_motif_by_id("MA0139.2")
    counts = np.array([matrix.counts[b] for b in "ACGT"]).T
    expected = np.maximum(counts / counts.sum(axis=1, keepdims=True), motif_lib.MIN_PROBABILITY)
    np.testing.assert_allclose(written["CTCF"], expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    ctcf = resolve_motifs(["jaspar:CTCF"])[0]
    genome = Fasta(str(exp / "genome.fa"))
    bound = [r for r in _sites(exp) if r[4] == "CTCF" and r[6] == "1"]
    assert bound
    for chrom, start, end, strand, *_ in bound:
        seq = str(genome[chrom][int(start):int(end)]).upper()
        if strand == "-":
            seq = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
        assert motif_lib.score(ctcf, np.array(["ACGT".index(c) for c in seq])) >= ctcf.threshold - 1e-9


def _bound_pairs(exp) -> list[tuple[float, bool, float, str]]:
    """(centre distance, same motif, affinity / score's affinity, motif) of each site in a region whose only other
    bound site is one more: its boost is that one pair's (score's affinity recomputed from the matrix)."""
    motifs = {m.name: m for m in resolve_motifs(["gata", "ap1", "ctcf"])}
    by_region: dict[str, list[list[str]]] = {}
    for row in _sites(exp):
        if row[6] == "1":
            by_region.setdefault(row[7], []).append(row)
    pairs = []
    for rows in by_region.values():
        if len(rows) != 2:
            continue
        a, b = rows
        distance = abs((int(a[1]) + int(a[2])) / 2 - (int(b[1]) + int(b[2])) / 2)
        for row in rows:
            m = motifs[row[4]]
            plain = 8.0 ** (-(m.best_score - float(row[5])) / (m.best_score - m.threshold))
            pairs.append((distance, a[4] == b[4], float(row[8]) / plain, row[4]))
    return pairs


def test_cooperative_spacing_boosts_pairs_at_that_spacing_and_plants_them_around_it(make_experiment):
    """With --cooperative-spacing 24 (width 3, strength 3) a bound pair's affinity is multiplied by
    1 + 3·exp(−(d − 24)²/18) (different motifs; 0.4 of that strength for the same motif): its largest at 24 bp;
    the planted distances of different-motif pairs are densest at and around 24 bp with pairs on both sides, and
    truth/summary.json records the spacing. The default experiment keeps the linear boost and records it."""
    exp = make_experiment(n_peaks=250, variation=Variation(cooperative_spacing=24))
    pairs = _bound_pairs(exp)
    assert len(pairs) > 100
    distance, same, boost = (np.array(v) for v in list(zip(*pairs))[:3])
    expected = 1 + np.where(same, 0.4, 1.0) * 3.0 * np.exp(-0.5 * ((distance - 24) / 3.0) ** 2)
    np.testing.assert_allclose(boost, expected, rtol=2e-3, atol=2e-3)
    assert boost.max() > 3.5 and abs(distance[boost.argmax()] - 24) <= 1
    different = distance[::2][~same[::2]]  # each pair once
    near, beside = np.sum(np.abs(different - 24) <= 6) / 13, np.sum((different > 30) & (different <= 80)) / 50
    assert near > 2 * beside > 0 and np.sum(different < 18) >= 5
    truth = json.loads((exp / "truth/summary.json").read_text())["cooperativity"]
    assert (truth["shape"], truth["spacing"], truth["width"], truth["boost_different_motifs"]) == (
        "gaussian", 24, 3.0, 3.0)
    default = json.loads((make_experiment() / "truth/summary.json").read_text())["cooperativity"]
    assert (default["shape"], default["spacing"], default["zero_at"]) == ("linear", None, 50)


def test_bad_knobs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no JASPAR matrix"):
        resolve_motifs(["jaspar:NOT_A_FACTOR_XYZ"])
    assert run_guarded(simulate_cli.main, [str(tmp_path / "x"), "--depth", "0", "--quiet"]) == 2
    assert run_guarded(simulate_cli.main, [str(tmp_path / "y"), "--strength-noise", "-1", "--quiet"]) == 2
    for flag, value in (("--cooperative-spacing", "-5"), ("--cooperative-width", "0"),
                        ("--cooperative-strength", "-1")):
        assert run_guarded(simulate_cli.main, [str(tmp_path / "z"), flag, value, "--quiet"]) == 2
