"""outliers: the kept peaks equal a numpy computation of the reference's rule over direct pyBigWig reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from bpnetz.cli.outliers import main as outliers_main
from bpnetz.errors import InputError
from bpnetz.preprocess.outliers import remove_outliers

SIZES = {"chr1": 6000, "chr2": 4000, "chr3": 3000}
SEQ_LEN = 400


def _write_bigwig(path: Path, tracks: dict[str, np.ndarray]) -> None:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(SIZES.items()))
    for chrom, values in tracks.items():
        nz = np.flatnonzero(values)
        bw.addEntries(chrom, nz.astype(np.int64), values=values[nz].astype(np.float64), span=1)
    bw.close()


@pytest.fixture()
def experiment(tmp_path) -> dict:
    rng = np.random.default_rng(3)
    summits = {"chr1": [150, 700, 1500, 2300, 3100, 3900, 4700, 5500, 5900],  # 150 and 5900 near the ends
               "chr2": [300, 900, 1600, 2400, 3300],
               "chr3": [1000, 2000]}
    tracks = {}
    for strand in ("plus", "minus"):
        tracks[strand] = {c: rng.poisson(0.3, n).astype(float) for c, n in SIZES.items()}
    # two strong outliers and one moderately high peak
    tracks["plus"]["chr1"][3050:3150] += 40
    tracks["minus"]["chr2"][2380:2420] += 90
    tracks["plus"]["chr1"][680:720] += 3
    paths = {}
    for strand, t in tracks.items():
        paths[strand] = tmp_path / f"{strand}.bw"
        _write_bigwig(paths[strand], t)
    rows = []
    for chrom, ss in summits.items():
        for s in ss:
            start = s - 37
            rows.append([chrom, str(start), str(start + 90), f"p{chrom}_{s}", "500", ".", "8.1", "-1", "3.2",
                         "37", "extra"])
    rows.insert(4, list(rows[2]))  # exact duplicate row
    peaks = tmp_path / "peaks.narrowPeak"
    peaks.write_text("".join("\t".join(r) + "\n" for r in rows[::-1]))  # unsorted input
    (tmp_path / "chrom.sizes").write_text("".join(f"{c}\t{n}\n" for c, n in SIZES.items()))
    blacklist = tmp_path / "blacklist.bed"
    # one region strictly inside the window of chr1:3900 (the reference misses it), one across chr2:900's end
    blacklist.write_text("chr1\t3890\t3910\nchr2\t1090\t1300\n")
    data = {"0": {"signal": {"source": [str(paths["plus"]), str(paths["minus"])]},
                  "loci": {"source": [str(peaks)]}}}
    (tmp_path / "input_data.json").write_text(json.dumps(data))
    return {"dir": tmp_path, "tracks": tracks, "rows": rows, "paths": paths}


def _expected(exp: dict, chroms: list[str], blacklist: list[tuple[str, int, int]], q=0.99, s=1.2):
    """Kept rows by the rule, computed from whole-chromosome pyBigWig reads."""
    arrays = {}
    for strand, path in exp["paths"].items():
        with pyBigWig.open(str(path)) as bw:
            arrays[strand] = {c: np.nan_to_num(np.array(bw.values(c, 0, n))) for c, n in SIZES.items()}
    candidates, seen = [], set()
    for row in exp["rows"]:
        chrom, summit = row[0], int(row[1]) + int(row[9])
        lo, hi = summit - SEQ_LEN // 2, summit + SEQ_LEN // 2
        if chrom not in chroms or lo < 0 or hi > SIZES[chrom] or tuple(row) in seen:
            continue
        seen.add(tuple(row))
        if any(c == chrom and b_lo < hi and b_hi > lo for c, b_lo, b_hi in blacklist):
            continue
        mean = np.mean([arrays[strand][chrom][lo:hi].sum() for strand in arrays])
        candidates.append((row, mean))
    means = np.sort([m for _, m in candidates])
    nearest = means[np.abs(means - np.quantile(means, q)).argmin()]
    kept = [row for row, m in candidates if m <= nearest * s]
    order = list(SIZES)
    return sorted(kept, key=lambda r: (order.index(r[0]), int(r[1]))), nearest * s * 2


def _read(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()]


def test_quantile_rule_blacklist_and_sorting(experiment):
    d = experiment["dir"]
    out = d / "out" / "peaks_inliers.bed"
    result = remove_outliers(d / "input_data.json", out, d / "chrom.sizes", chroms=["chr1", "chr2"],
                             sequence_len=SEQ_LEN, quantile=0.8, scale_factor=1.2, blacklist=d / "blacklist.bed")
    expected, threshold_sum = _expected(experiment, ["chr1", "chr2"],
                                        [("chr1", 3890, 3910), ("chr2", 1090, 1300)], q=0.8)
    assert _read(out) == expected
    assert result.threshold.threshold == pytest.approx(threshold_sum)
    kept_names = {r[3] for r in expected}
    assert "pchr1_3100" not in kept_names and "pchr2_2400" not in kept_names  # the planted outliers
    assert "pchr1_3900" not in kept_names and "pchr2_900" not in kept_names  # blacklisted
    log = (d / "out" / "outliers.log").read_text()
    assert "window overlaps a blacklist region" in log and "outlier" in log and "duplicate row" in log
    assert not (Path.cwd() / "outliers.log").exists()
    reasons = result.reasons()
    assert reasons["window crosses a chromosome end"] == 2 and reasons["duplicate row"] == 1


def test_defaults_via_cli_with_global_weight(experiment, capsys):
    d = experiment["dir"]
    out = d / "inliers.bed"
    code = outliers_main(["-i", str(d / "input_data.json"), "-c", str(d / "chrom.sizes"), "--sequence-len",
                          str(SEQ_LEN), "--output-bed", str(out), "--global-sample-weight", "1",
                          "-q", "0.9", "-s", "1.5"])
    assert code == 0 and "kept" in capsys.readouterr().out
    expected, _ = _expected(experiment, list(SIZES), [], q=0.9, s=1.5)
    for row in expected:
        row[4] = "1.0"
    assert _read(out) == expected


def test_errors(experiment):
    d = experiment["dir"]
    with pytest.raises(InputError, match="chrX"):
        remove_outliers(d / "input_data.json", d / "o.bed", d / "chrom.sizes", chroms=["chrX"])
    with pytest.raises(InputError, match="task '5'"):
        remove_outliers(d / "input_data.json", d / "o.bed", d / "chrom.sizes", task="5")
    (d / "bad.json").write_text(json.dumps({"0": {"signal": {"source": ["nope.bw"]},
                                                  "loci": {"source": [str(d / "peaks.narrowPeak")]}}}))
    with pytest.raises(InputError, match="nope.bw"):
        remove_outliers(d / "bad.json", d / "o.bed", d / "chrom.sizes")
    assert not (d / "o.bed").exists()
