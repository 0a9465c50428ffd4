"""Counts loss weight against numpy over direct pyBigWig reads of tiny hand-made bigWigs and a hand-made store."""

from __future__ import annotations

import json

import numpy as np
import pyBigWig
import pytest

from bpnetz.cli.counts_loss_weight import main
from bpnetz.config import InputData
from bpnetz.errors import InputError
from bpnetz.preprocess.counts_loss_weight import (
    counts_loss_weight,
    counts_loss_weight_from_bigwigs,
    counts_loss_weight_from_store,
)
from tests.store.tiny_store import SIGNALS, make_tiny_store

SIZES = {"chr1": 3000, "chr2": 2000}
WIDTH = 400
# (chrom, summit) per task; chr1:2900 runs past the chromosome end, chr2:1700 lies partly where the bigWigs
# hold no data, chr9 is not in the bigWigs (skipped, as the reference skips peaks it cannot read)
PEAKS = {0: [("chr1", 500), ("chr1", 2900), ("chr2", 1700), ("chr9", 100)], 1: [("chr1", 1200), ("chr2", 300)]}
TRACKS = {0: ["a_plus", "a_minus"], 1: ["b"]}


def write_bigwig(path, rng: np.random.Generator, scale: float) -> None:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(SIZES.items()))
    bw.addEntries("chr1", 0, values=rng.poisson(scale, SIZES["chr1"]).astype(float).tolist(), span=1, step=1)
    bw.addEntries("chr2", 0, values=rng.poisson(scale, 1500).astype(float).tolist(), span=1, step=1)
    bw.close()


def write_peaks(path, peaks) -> None:
    # narrowPeak: summit = start + column 10; intervals of different widths around each summit
    lines = [f"{chrom}\t{summit - 30 - i}\t{summit + 40}\tp{i}\t0\t.\t1\t1\t1\t{30 + i}\n"
             for i, (chrom, summit) in enumerate(peaks)]
    path.write_text("".join(lines))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clw")
    rng = np.random.default_rng(4)
    for name, scale in (("a_plus", 3.0), ("a_minus", 1.0), ("b", 6.0)):
        write_bigwig(tmp / f"{name}.bw", rng, scale)
    tasks = {}
    for task, peaks in PEAKS.items():
        write_peaks(tmp / f"peaks{task}.narrowPeak", peaks)
        tasks[str(task)] = {"signal": {"source": [str(tmp / f"{n}.bw") for n in TRACKS[task]]},
                            "loci": {"source": [str(tmp / f"peaks{task}.narrowPeak")]}}
    (tmp / "input_data.json").write_text(json.dumps(tasks))
    return tmp


def expected_weight(tmp, alpha: float = 1.0) -> float:
    totals = []
    for task, peaks in PEAKS.items():
        for name in TRACKS[task]:
            bw = pyBigWig.open(str(tmp / f"{name}.bw"))
            for chrom, summit in peaks:
                if chrom not in bw.chroms():
                    continue
                start, end = max(summit - WIDTH // 2, 0), min(summit + WIDTH // 2, bw.chroms(chrom))
                totals.append(np.nansum(np.asarray(bw.values(chrom, start, end), dtype=float)))
            bw.close()
    assert len(totals) == 3 * 2 + 2 * 1
    return alpha * float(np.mean(totals))


def test_weight_is_alpha_times_mean_total_per_track_per_peak():
    totals = np.array([[10.0, 30.0], [20.0, np.nan]])
    assert counts_loss_weight(totals, alpha=0.5) == pytest.approx(0.5 * 20.0)
    assert counts_loss_weight([totals, np.array([[40.0]])], orig_multi_loss=True) == pytest.approx(25.0 / 2)
    with pytest.raises(ValueError):
        counts_loss_weight(np.array([np.nan]))


def test_from_bigwigs_matches_pybigwig_reads(experiment):
    data = InputData.load(experiment / "input_data.json")
    expected = expected_weight(experiment)
    assert counts_loss_weight_from_bigwigs(data, peak_width=WIDTH) == pytest.approx(expected, rel=1e-9)
    assert counts_loss_weight_from_bigwigs(data, peak_width=WIDTH, alpha=0.25,
                                           orig_multi_loss=True) == pytest.approx(expected * 0.25 / 2, rel=1e-9)


def test_default_when_there_are_no_peaks(experiment, tmp_path):
    (tmp_path / "empty.narrowPeak").write_text("")
    (tmp_path / "input_data.json").write_text(json.dumps(
        {"0": {"signal": {"source": [str(experiment / "b.bw")]}, "loci": {"source": [str(tmp_path / "empty.narrowPeak")]}}}))
    data = InputData.load(tmp_path / "input_data.json")
    assert counts_loss_weight_from_bigwigs(data, default=55.0) == 55.0


def test_cli_prints_the_weight(experiment, capsys):
    assert main(["--input-data", str(experiment / "input_data.json"), "--peak-width", str(WIDTH),
                 "--alpha", "2"]) == 0
    assert float(capsys.readouterr().out.strip()) == pytest.approx(2 * expected_weight(experiment), rel=1e-9)


def test_from_store_matches_pybigwig_reads(tmp_path, capsys):
    tiny = make_tiny_store(tmp_path)
    width = 20
    handles = {name: pyBigWig.open(str(tiny.bigwigs[name])) for name, _, _ in SIGNALS}
    totals = []
    for locus in tiny.loci:
        if locus["kind"] != 0:
            continue
        for name, task, _ in SIGNALS:
            if task == locus["task"]:
                values = handles[name].values(locus["chrom"], locus["summit"] - width // 2,
                                              locus["summit"] + width // 2)
                totals.append(np.sum(values))
    expected = float(np.mean(totals))
    assert counts_loss_weight_from_store(tiny.path, peak_width=width) == pytest.approx(expected, rel=1e-9)
    assert main(["--store", str(tiny.path), "--peak-width", str(width), "--orig-multi-loss"]) == 0
    assert float(capsys.readouterr().out.strip()) == pytest.approx(expected / 2, rel=1e-9)
    with pytest.raises(InputError, match="peak-width"):
        counts_loss_weight_from_store(tiny.path, peak_width=1000)
