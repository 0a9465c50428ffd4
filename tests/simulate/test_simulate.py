"""Tests of ``bpnetz simulate``: every file is checked by reading it back with pyfaidx / pyBigWig / plain parsing and
recomputing the property independently (PWM scores, footprint positions, Poisson means, GC, loss weight)."""

from __future__ import annotations

import csv
import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pyBigWig
import pyfaidx
import pytest
from scipy.stats import spearmanr

from bpnetz.cli import run_guarded
from bpnetz.cli.simulate import main as cli_main
from bpnetz.config import BpnetParams, InputData, Splits
from bpnetz.files.atomic import MARKER
from bpnetz.simulate.experiment import simulate
from tests.conftest import TINY_OPTIONS

WINDOW_HALF = TINY_OPTIONS["input_len"] // 2 + TINY_OPTIONS["max_jitter"]
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def bed_rows(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip()]


def site_rows(exp: Path) -> list[dict[str, str]]:
    with open(exp / "truth/sites.tsv") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def chrom_sizes(exp: Path) -> dict[str, int]:
    lines = (exp / "chrom.sizes").read_text().splitlines()
    return {name: int(size) for name, size in (line.split("\t") for line in lines)}


def track(path: Path, chrom: str) -> np.ndarray:
    """Per-base values of a whole chromosome; gaps read as 0."""
    bw = pyBigWig.open(str(path))
    try:
        return np.nan_to_num(np.asarray(bw.values(chrom, 0, bw.chroms(chrom)), dtype=np.float64))
    finally:
        bw.close()


def log_odds(exp: Path) -> dict[str, np.ndarray]:
    matrices = json.loads((exp / "truth/motifs.json").read_text())
    return {name: np.log2(np.asarray(rows) / 0.25) for name, rows in matrices.items()}


def pwm_score(matrix: np.ndarray, seq: str) -> float:
    return float(sum(matrix[i, "ACGT".index(base)] for i, base in enumerate(seq)))


def summits(rows: list[list[str]]) -> list[tuple[str, int]]:
    return [(r[0], int(r[1]) + int(r[9])) for r in rows]


# ------------------------------------------------------------------------------------------------- genome files


def test_genome_files_agree(tiny_experiment: Path, tmp_path: Path) -> None:
    sizes = chrom_sizes(tiny_experiment)
    assert list(sizes) == (tiny_experiment / "chroms.txt").read_text().split()
    assert list(sizes) == ["chr1", "chr2", "chr3"]
    fasta = pyfaidx.Fasta(str(tiny_experiment / "genome.fa"))
    assert {name: len(fasta[name]) for name in fasta.keys()} == sizes
    # our .fai equals the one pyfaidx builds itself from a copy of the FASTA
    shutil.copy(tiny_experiment / "genome.fa", tmp_path / "copy.fa")
    pyfaidx.Fasta(str(tmp_path / "copy.fa"))
    assert (tmp_path / "copy.fa.fai").read_text() == (tiny_experiment / "genome.fa.fai").read_text()


def test_genome_composition(tiny_experiment: Path) -> None:
    text = "".join(line for line in (tiny_experiment / "genome.fa").read_text().splitlines()
                   if not line.startswith(">"))
    letters = np.frombuffer(text.encode(), dtype=np.uint8)
    n_count = int((letters == ord("N")).sum())
    assert 300 <= n_count <= 10_000  # N runs: a few hundred bp to a few kb
    assert 0.05 < np.isin(letters, np.frombuffer(b"acgt", np.uint8)).mean() < 0.3  # soft-masked stretches
    iupac = np.isin(letters, np.frombuffer(b"RYSWKMBDHV", np.uint8))
    assert 1 <= iupac.sum() <= 20
    # GC varies along the genome: 5-kb windows span more than 10 GC points
    upper = text.upper()
    gc = [sum(upper[i:i + 5000].count(b) for b in "GC") / 5000 for i in range(0, len(upper) - 5000, 5000)]
    assert max(gc) - min(gc) > 0.10


def test_n_runs_and_iupac_stay_out_of_peaks(tiny_experiment: Path) -> None:
    fasta = pyfaidx.Fasta(str(tiny_experiment / "genome.fa"))
    for chrom, summit in summits(bed_rows(tiny_experiment / "data/peaks.bed")):
        seq = str(fasta[chrom][max(summit - WINDOW_HALF, 0):summit + WINDOW_HALF]).upper()
        assert set(seq) <= set("ACGT"), (chrom, summit)


# ----------------------------------------------------------------------------------------------- peaks, background


def test_peaks_are_narrowpeak_with_summits_inside(tiny_experiment: Path) -> None:
    sizes = chrom_sizes(tiny_experiment)
    rows = bed_rows(tiny_experiment / "data/peaks.bed")
    assert len(rows) == TINY_OPTIONS["n_peaks"]
    assert len({r[3] for r in rows}) == len(rows)
    order = [(list(sizes).index(r[0]), int(r[1])) for r in rows]
    assert order == sorted(order)
    for r in rows:
        assert len(r) == 10
        start, end, offset = int(r[1]), int(r[2]), int(r[9])
        assert 0 <= start < end <= sizes[r[0]]
        assert 0 <= offset < end - start
        assert 0 <= int(r[4]) <= 1000 and r[5] == "."
        assert float(r[6]) >= 0 and float(r[7]) >= float(r[8]) >= 0


def test_edge_peaks_exist(tiny_experiment: Path) -> None:
    sizes = chrom_sizes(tiny_experiment)
    near = [(c, s) for c, s in summits(bed_rows(tiny_experiment / "data/peaks.bed"))
            if s < WINDOW_HALF or sizes[c] - s <= WINDOW_HALF]
    assert len(near) >= 3
    assert len({c for c, _ in near}) >= 2


def test_background_is_away_from_peaks_gc_matched_and_enough(tiny_experiment: Path) -> None:
    peaks = bed_rows(tiny_experiment / "data/peaks.bed")
    background = bed_rows(tiny_experiment / "data/background.bed")
    assert len(background) > 0.25 * len(peaks) + 2
    assert all(len(r) == 10 and 0 <= int(r[9]) < int(r[2]) - int(r[1]) for r in background)
    peak_summits = summits(peaks)
    min_distance = TINY_OPTIONS["output_len"] // 2 + TINY_OPTIONS["max_jitter"]
    for chrom, s in summits(background):
        assert all(abs(s - p) >= min_distance for c, p in peak_summits if c == chrom)
    fasta = pyfaidx.Fasta(str(tiny_experiment / "genome.fa"))
    half = TINY_OPTIONS["input_len"] // 2

    def gc(points: list[tuple[str, int]]) -> np.ndarray:
        out = []
        for chrom, s in points:
            seq = str(fasta[chrom][max(s - half, 0):s + half]).upper()
            out.append((seq.count("G") + seq.count("C")) / sum(seq.count(b) for b in "ACGT"))
        return np.asarray(out)

    assert abs(gc(summits(background)).mean() - gc(peak_summits).mean()) < 0.03
    for chrom, s in summits(background):
        assert "N" not in str(fasta[chrom][s - WINDOW_HALF:s + WINDOW_HALF]).upper()


# ---------------------------------------------------------------------------------------------- planted sites


def test_planted_sites_are_in_the_fasta_on_their_strand(tiny_experiment: Path) -> None:
    fasta = pyfaidx.Fasta(str(tiny_experiment / "genome.fa"))
    matrices = log_odds(tiny_experiment)
    rng = np.random.default_rng(1)
    chr1 = str(fasta["chr1"][:]).upper()
    peak_names = {r[3] for r in bed_rows(tiny_experiment / "data/peaks.bed")}
    same, opposite = {m: [] for m in matrices}, {m: [] for m in matrices}
    for site in site_rows(tiny_experiment):
        seq = str(fasta[site["chrom"]][int(site["start"]):int(site["end"])]).upper()
        oriented = seq[::-1].translate(COMPLEMENT) if site["strand"] == "-" else seq
        matrix = matrices[site["motif"]]
        assert len(seq) == matrix.shape[0]
        assert pwm_score(matrix, oriented) == pytest.approx(float(site["score"]), abs=2e-3)
        assert site["peak_name"] in peak_names
        if site["bound"] == "1":
            same[site["motif"]].append(pwm_score(matrix, oriented))
            other = oriented[::-1].translate(COMPLEMENT)
            opposite[site["motif"]].append(pwm_score(matrix, other))
    for name, matrix in matrices.items():
        width = matrix.shape[0]
        starts = rng.integers(0, len(chr1) - width, 3000)
        chance = [pwm_score(matrix, chr1[s:s + width]) for s in starts if set(chr1[s:s + width]) <= set("ACGT")]
        assert min(same[name]) > np.quantile(chance, 0.999), name  # bound sites score far above random sequence
        if name in ("gata", "ctcf"):  # not palindromic: the other strand scores much lower
            assert np.mean(same[name]) > np.mean(opposite[name]) + 8


def test_every_motif_is_planted_and_meme_matches_json(tiny_experiment: Path) -> None:
    sites = site_rows(tiny_experiment)
    matrices = json.loads((tiny_experiment / "truth/motifs.json").read_text())
    assert set(matrices) == {"gata", "ap1", "ctcf"}
    for name, rows in matrices.items():
        assert 8 <= len(rows) <= 14
        assert np.allclose(np.asarray(rows).sum(axis=1), 1, atol=1e-5)
        assert sum(s["motif"] == name and s["bound"] == "1" for s in sites) >= 15
    meme = (tiny_experiment / "truth/motifs.meme").read_text().split("MOTIF ")
    assert meme[0].startswith("MEME version")
    for block in meme[1:]:
        lines = block.strip().splitlines()
        name = lines[0].split()[0]
        width = int(lines[1].split("w=")[1].split()[0])
        matrix = np.array([[float(x) for x in line.split()] for line in lines[2:2 + width]])
        assert np.allclose(matrix, matrices[name], atol=1e-5)


# --------------------------------------------------------------------------------------------------- signal


def test_counts_are_nonnegative_integers_on_the_genome(tiny_experiment: Path) -> None:
    sizes = chrom_sizes(tiny_experiment)
    for name in ("plus", "minus", "control_plus", "control_minus"):
        bw = pyBigWig.open(str(tiny_experiment / f"data/{name}.bw"))
        assert bw.chroms() == sizes
        values = np.concatenate([np.array([v for _, _, v in bw.intervals(c)]) for c in sizes])
        assert values.size > 1000
        assert (values > 0).all() and np.array_equal(values, np.round(values))
        bw.close()


def test_footprints_flank_bound_sites(tiny_experiment: Path) -> None:
    offsets = np.arange(-100, 101)
    plus_mass, minus_mass = np.zeros(offsets.size), np.zeros(offsets.size)
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for site in site_rows(tiny_experiment):
        if site["bound"] != "1":
            continue
        chrom = site["chrom"]
        if chrom not in cache:
            cache[chrom] = (track(tiny_experiment / "data/plus.bw", chrom),
                            track(tiny_experiment / "data/minus.bw", chrom))
        plus, minus = cache[chrom]
        centre = (int(site["start"]) + int(site["end"])) // 2
        pos = centre + offsets
        ok = (pos >= 0) & (pos < plus.size)
        plus_mass[ok] += plus[pos[ok]]
        minus_mass[ok] += minus[pos[ok]]
    assert (plus_mass * offsets).sum() / plus_mass.sum() < -5  # + strand 5' ends upstream
    assert (minus_mass * offsets).sum() / minus_mass.sum() > 5  # − strand downstream
    assert offsets[plus_mass.argmax()] < 0 < offsets[minus_mass.argmax()]


def test_expected_rates_are_the_poisson_means(tiny_experiment: Path) -> None:
    sizes = chrom_sizes(tiny_experiment)
    counts, expected = [], []
    for strand in ("plus", "minus"):
        for chrom in sizes:
            counts.append(track(tiny_experiment / f"data/{strand}.bw", chrom))
            expected.append(track(tiny_experiment / f"truth/expected_{strand}.bw", chrom))
    counts_all, expected_all = np.concatenate(counts), np.concatenate(expected)
    assert (expected_all > 0).all()
    assert counts_all.sum() / expected_all.sum() == pytest.approx(1.0, abs=0.03)
    # per-base: in every band of expected rate, mean counts match the mean rate
    edges = np.quantile(expected_all, [0.0, 0.5, 0.9, 0.99, 1.0])
    for low, high in zip(edges[:-1], edges[1:]):
        band = (expected_all >= low) & (expected_all <= high)
        mean_rate = expected_all[band].mean()
        stderr = np.sqrt(mean_rate / band.sum())
        assert abs(counts_all[band].mean() - mean_rate) < 5 * stderr + 1e-3


def test_depth_rises_with_motif_score(make_experiment) -> None:
    exp = make_experiment(n_peaks=150)
    sites = site_rows(exp)
    per_region: dict[str, list[dict[str, str]]] = {}
    for s in sites:
        per_region.setdefault(s["peak_name"], []).append(s)
    ranks, excess = [], []
    rates: dict[str, np.ndarray] = {}
    for name in ("gata", "ap1", "ctcf"):
        lone = [group[0] for group in per_region.values()
                if len(group) == 1 and group[0]["motif"] == name and group[0]["bound"] == "1"]
        heights = []
        for s in lone:
            if s["chrom"] not in rates:
                rates[s["chrom"]] = (track(exp / "truth/expected_plus.bw", s["chrom"])
                                     + track(exp / "truth/expected_minus.bw", s["chrom"]))
            rate = rates[s["chrom"]]
            centre = (int(s["start"]) + int(s["end"])) // 2
            heights.append(rate[max(centre - 60, 0):centre + 60].max())
        scores = [float(s["score"]) for s in lone]
        ranks += list(np.argsort(np.argsort(scores)) / max(len(scores) - 1, 1))
        excess += list(np.argsort(np.argsort(heights)) / max(len(heights) - 1, 1))
    assert len(ranks) >= 15
    assert spearmanr(ranks, excess).statistic > 0.6


def test_control_shape_leaks_into_chip(tiny_experiment: Path) -> None:
    peaks = summits(bed_rows(tiny_experiment / "data/peaks.bed"))
    chip_bins, control_bins = [], []
    for chrom in chrom_sizes(tiny_experiment):
        chip = track(tiny_experiment / "data/plus.bw", chrom) + track(tiny_experiment / "data/minus.bw", chrom)
        control = (track(tiny_experiment / "data/control_plus.bw", chrom)
                   + track(tiny_experiment / "data/control_minus.bw", chrom))
        for start in range(0, chip.size - 1000, 1000):  # 1-kb bins away from peaks
            if all(abs(start + 500 - s) > 850 for c, s in peaks if c == chrom):
                chip_bins.append(chip[start:start + 1000].sum())
                control_bins.append(control[start:start + 1000].sum())
    assert len(chip_bins) > 40
    assert spearmanr(chip_bins, control_bins).statistic > 0.25


# ------------------------------------------------------------------------------------------- JSON files, options


def test_json_files_load_and_loss_weight_follows_the_reference_formula(tiny_experiment: Path, monkeypatch) -> None:
    monkeypatch.chdir(tiny_experiment)
    data = InputData.load("input_data.json")  # relative paths resolve from inside the experiment
    task = data.tasks["0"]
    assert task.signal.source == ["data/plus.bw", "data/minus.bw"]
    assert task.bias.source == ["data/control_plus.bw", "data/control_minus.bw"]
    assert task.bias.smoothings == [None, None]
    assert task.background_loci.ratio == 0.25
    params = BpnetParams.load("bpnet_params.json")
    assert (params.input_len, params.output_profile_len) == (400, 200)
    split = Splits.load("splits.json").folds["0"]
    assert (split.test, split.val, split.train) == (["chr1"], ["chr2"], ["chr3"])
    sizes = chrom_sizes(tiny_experiment)
    totals = []  # reads per (peak, track) in summit ± 500, clipped to the chromosome
    for strand in ("plus", "minus"):
        bw = pyBigWig.open(f"data/{strand}.bw")
        for chrom, s in summits(bed_rows(Path("data/peaks.bed"))):
            totals.append(np.nansum(bw.values(chrom, max(s - 500, 0), min(s + 500, sizes[chrom]))))
        bw.close()
    assert params.loss_weights[0] == 1
    assert params.loss_weights[1] == pytest.approx(np.mean(totals), abs=0.01)


def test_same_seed_gives_identical_files(tiny_experiment: Path, tmp_path: Path) -> None:
    again = simulate(tmp_path / "again", progress=False, **TINY_OPTIONS).out
    compare = filecmp.dircmp(tiny_experiment, again)
    paths = [p.relative_to(tiny_experiment) for p in tiny_experiment.rglob("*") if p.is_file() and p.name != MARKER]
    assert sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file() and p.name != MARKER) == sorted(paths)
    for rel in paths:
        assert filecmp.cmp(tiny_experiment / rel, again / rel, shallow=False), rel
    assert not compare.left_only and not compare.right_only
    other = simulate(tmp_path / "other", progress=False, seed=1, **TINY_OPTIONS).out
    assert (other / "genome.fa").read_bytes() != (tiny_experiment / "genome.fa").read_bytes()


def test_two_tasks_use_their_own_files_and_motifs(make_experiment, monkeypatch) -> None:
    exp = make_experiment(tasks=2)
    monkeypatch.chdir(exp)
    data = InputData.load("input_data.json")
    assert list(data.tasks) == ["0", "1"]
    assert data.tasks["1"].signal.source == ["data/task1_plus.bw", "data/task1_minus.bw"]
    assert data.tasks["1"].loci.source == ["data/task1_peaks.bed"]
    assert len(BpnetParams.load("bpnet_params.json").profile_bias_module_params.kernel_sizes) == 2
    summary = json.loads(Path("truth/summary.json").read_text())
    subsets = [set(summary["task_motifs"][t]) for t in ("0", "1")]
    assert subsets[0] and subsets[1] and subsets[0] != subsets[1]
    # each task's peaks hold a bound site of one of its motifs
    bound = {}
    for s in site_rows(exp):
        if s["bound"] == "1":
            bound.setdefault(s["peak_name"], set()).add(s["motif"])
    for task, name in ((0, "data/peaks.bed"), (1, "data/task1_peaks.bed")):
        rows = bed_rows(Path(name))
        assert len(rows) > 10
        assert all(bound[r[3]] & subsets[task] for r in rows)


def test_unstranded_signal_is_the_sum_of_strands(tiny_experiment: Path, make_experiment, monkeypatch) -> None:
    exp = make_experiment(stranded=False, bias_smoothing=(3.0, 21))
    monkeypatch.chdir(exp)
    task = InputData.load("input_data.json").tasks["0"]
    assert task.signal.source == ["data/signal.bw"] and not task.stranded
    assert task.bias.source == ["data/control.bw"] and task.bias.smoothings == [(3.0, 21)]
    for chrom in chrom_sizes(exp):
        stranded = track(tiny_experiment / "data/plus.bw", chrom) + track(tiny_experiment / "data/minus.bw", chrom)
        assert np.array_equal(track(exp / "data/signal.bw", chrom), stranded)


def test_no_control_drops_controls_and_bias(tiny_experiment: Path, make_experiment, monkeypatch) -> None:
    exp = make_experiment(control=False)
    assert not list((exp / "data").glob("control*"))
    monkeypatch.chdir(exp)
    assert InputData.load("input_data.json").tasks["0"].bias is None
    assert "bias" not in json.loads(Path("input_data.json").read_text())["0"]
    assert filecmp.cmp(exp / "data/plus.bw", tiny_experiment / "data/plus.bw", shallow=False)


def test_long_chromosome_name(make_experiment) -> None:
    exp = make_experiment(long_chrom_name=True)
    name = "chrUn_KI270742v1"
    assert name in chrom_sizes(exp)
    assert name in pyfaidx.Fasta(str(exp / "genome.fa")).keys()
    assert name in json.loads((exp / "splits.json").read_text())["0"]["train"]
    assert any(r[0] == name for r in bed_rows(exp / "data/peaks.bed"))
    bw = pyBigWig.open(str(exp / "data/plus.bw"))
    assert name in bw.chroms()
    bw.close()


def test_cli_refuses_a_non_empty_output_unless_forced(tmp_path: Path, capsys) -> None:
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = [str(out), "--n-chroms", "3", "--chrom-length", "40000", "--n-peaks", "30", "--input-len", "400",
            "--output-len", "200", "--max-jitter", "16", "--quiet"]
    assert run_guarded(cli_main, args) == 2
    assert "--force" in capsys.readouterr().err and (out / "keep.txt").exists()
    assert run_guarded(cli_main, args + ["--force"]) == 2  # --force never replaces a directory bpnetz did not write
    assert "bpnetz did not write" in capsys.readouterr().err and (out / "keep.txt").read_text() == "x"
    (out / "keep.txt").unlink()
    assert run_guarded(cli_main, args) == 0
    assert "30 peaks" in capsys.readouterr().out
    assert run_guarded(cli_main, args + ["--force"]) == 0  # an earlier simulation is replaced
    assert (out / "genome.fa").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_bad_options_are_input_errors(tmp_path: Path, capsys) -> None:
    assert run_guarded(cli_main, [str(tmp_path / "a"), "--motifs", "gata,nope", "--quiet"]) == 2
    assert "nope" in capsys.readouterr().err
    assert run_guarded(cli_main, [str(tmp_path / "b"), "--n-chroms", "2", "--quiet"]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
