"""Fast checks of the batch manifest, the cross-experiment motif grouping and the Slurm cluster of docs/atlas.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bpnetz.batch.manifest import load_manifest
from bpnetz.batch.report import group_motifs
from bpnetz.errors import InputError


def _params(path: Path) -> Path:
    path.write_text(json.dumps({"input_len": 400, "output_profile_len": 200}))
    return path


def test_tsv_and_yaml_manifests_resolve_paths_lengths_stages_and_args(tmp_path):
    _params(tmp_path / "p.json")
    (tmp_path / "m.tsv").write_text(
        "name\tinput_data\tgenome\tchrom_sizes\tparams\tsplits\tstages\ttrain_args\tmax_jitter\n"
        "# a comment\n"
        "a\tx/input_data.json\tg.fa\tc.sizes\tp.json\ts.json\tmodisco\t--epochs 2 --batch-size 'x y'\t16\n")
    (a,) = load_manifest(tmp_path / "m.tsv")
    assert a.input_data == tmp_path / "x" / "input_data.json"
    assert (a.input_len, a.output_len, a.max_jitter, a.seed) == (400, 200, 16, 1234)
    assert a.stages == ("build", "train", "shap", "modisco")  # modisco needs shap, train and build
    assert a.args == {"train": ["--epochs", "2", "--batch-size", "x y"]}
    (tmp_path / "m.yaml").write_text(
        "defaults: {genome: g.fa, chrom_sizes: c.sizes, params: p.json, splits: s.json, stages: [predict],\n"
        "           train_args: [--epochs, '1']}\n"
        "experiments:\n"
        "  - {name: b, signal: 'p.bw,m.bw', peaks: peaks.bed, seed: 7}\n"
        "  - {name: c, input_data: i.json, input_len: 500, train_args: --epochs 3}\n")
    b, c = load_manifest(tmp_path / "m.yaml")
    assert b.tracks == {"signal": [tmp_path / "p.bw", tmp_path / "m.bw"], "peaks": [tmp_path / "peaks.bed"]}
    assert (b.seed, b.stages, b.args["train"]) == (7, ("build", "train", "predict"), ["--epochs", "1"])
    assert (c.input_len, c.args["train"]) == (500, ["--epochs", "3"])


@pytest.mark.parametrize("row, words", [
    ("a\t\tg.fa\tc.sizes\tp.json\ts.json\t", "lacks input_data"),
    ("a b\ti.json\tg.fa\tc.sizes\tp.json\ts.json\t", "needs a name"),
    ("a\ti.json\tg.fa\tc.sizes\tp.json\ts.json\tfold", "unknown stage"),
    ("a\ti.json\tg.fa\tc.sizes\tmissing.json\ts.json\t", "missing.json: cannot be read"),
])
def test_bad_manifest_rows_are_input_errors_naming_the_row(tmp_path, row, words):
    _params(tmp_path / "p.json")
    (tmp_path / "m.tsv").write_text("name\tinput_data\tgenome\tchrom_sizes\tparams\tsplits\tstages\n" + row + "\n")
    with pytest.raises(InputError, match=words):
        load_manifest(tmp_path / "m.tsv")


@dataclass
class _Pattern:
    name: str
    pfm: np.ndarray
    n_seqlets: int
    consensus: str = ""


def _onehot(seq: str, flank: int = 3) -> np.ndarray:
    pfm = np.full((len(seq) + 2 * flank, 4), 0.25)
    for i, base in enumerate(seq):
        pfm[flank + i] = [0.97 if b == base else 0.01 for b in "ACGT"]
    return pfm


def test_motifs_recurring_across_experiments_fall_into_one_group_either_strand():
    gata, ap1 = _onehot("AGATAAGA"), _onehot("TGACTCA")
    gata_rc = _onehot("TCTTATCT")  # the reverse complement of AGATAAGA
    groups = group_motifs({"e1": [_Pattern("p0", gata, 50), _Pattern("p1", ap1, 30)],
                           "e2": [_Pattern("q0", gata_rc, 40)],
                           "e3": [_Pattern("r0", ap1, 60), _Pattern("r1", _onehot("CCGCGG"), 20)]}, logos={})
    members = {g.name: g.members for g in groups}
    assert members["motif 1"].keys() == {"e3", "e1"} and members["motif 1"]["e1"][0] == "p1"  # ap1, 60 seqlets
    assert members["motif 2"].keys() == {"e1", "e2"} and members["motif 2"]["e2"][1] > 0.99
    assert members["motif 3"] == {"e3": ("r1", 1.0, 20)}


def test_slurm_cluster_of_the_docs_builds_its_job_script():
    jobqueue = pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (extra 'slurm')")
    cluster = jobqueue.SLURMCluster(cores=8, processes=1, memory="64GB", queue="gpu", walltime="04:00:00",
                                    job_extra_directives=["--gres=gpu:1"],
                                    worker_extra_args=["--resources", "GPU=1,CPU=1"], scheduler_options={
                                        "dashboard_address": ":0"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -p gpu" in script
    assert "--resources GPU=1,CPU=1" in script
