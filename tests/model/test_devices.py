"""Training on several devices (bpnetz/model/devices.py): a CPU split into two logical devices trains the same
model as one device with the same global batch; the loader's per-worker shares of the training stream (each
worker in its own process) are disjoint, cover every locus of every epoch once and give every worker the same
steps; a cluster (several hosts) is read from TF_CONFIG or an srun step (training on two workers:
tests/model/test_multiworker.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bpnetz.store.stream import LocusStream
from tests.model.test_train import SPLITS, store  # noqa: F401  (the tiny store fixture)

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *args: object) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, str(ROOT / "tests/model" / name), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_two_logical_devices_train_like_one_with_the_same_global_batch(store, tmp_path):  # noqa: F811
    """Same loss trajectory (training and validation, every epoch) within 1e-4 relative, all finite; measured
    difference ~1e-6 (float summation order). Before the gradient was clipped across replicas and the stream's
    epoch pinned, the per-epoch profile losses differed by up to 26%."""
    one = json.loads(run_script("devices_run.py", store, tmp_path / "one", 1))
    two = json.loads(run_script("devices_run.py", store, tmp_path / "two", 2))
    record = json.loads((tmp_path / "two" / "m_split000" / "training.json").read_text())
    assert record["summary"]["replicas"] == 2 and record["options"]["devices"] == "2"
    assert json.loads((tmp_path / "one" / "m_split000" / "training.json").read_text())["summary"]["replicas"] == 1
    for key in ("loss", "profile_loss", "logcounts_loss", "val_loss"):
        assert all(math.isfinite(v) for v in two[key]), key
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, err_msg=key)


def test_worker_shares_are_disjoint_cover_each_epoch_once_and_run_equal_steps(store):  # noqa: F811
    workers = [json.loads(run_script("shard_worker.py", store, k, 2)) for k in range(2)]
    whole = LocusStream(store, SPLITS.folds["0"], "train", batch_size=4, reverse_complement="random", seed=7,
                        cache=False, shuffle_loci=8)
    assert workers[0]["n_batches"] == workers[1]["n_batches"]
    for epoch in range(3):
        shares = [w["epochs"][epoch]["rows"] for w in workers]
        assert [w["epochs"][epoch]["batches"] for w in workers] == [w["n_batches"] for w in workers]
        assert not set(shares[0]) & set(shares[1])
        expected = np.sort(whole.selection.rows[whole.selection.epoch_positions(epoch)])
        np.testing.assert_array_equal(np.sort(shares[0] + shares[1]), expected)  # each locus once
        assert abs(len(shares[0]) - len(shares[1])) <= 1
        blocks = [set(np.asarray(s) // workers[0]["block_loci"]) for s in shares]
        assert len(blocks[0] & blocks[1]) <= 1  # each block read by one worker, but the one cut between them
    assert workers[0]["epochs"][0]["rows"] != workers[0]["epochs"][1]["rows"]  # new shares every epoch


def test_a_cluster_is_read_from_tf_config_or_slurm():
    from bpnetz.errors import InputError
    from bpnetz.model.devices import cluster_workers

    config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]}, "task": {"type": "worker",
                                                                                              "index": 0}}
    assert cluster_workers({"TF_CONFIG": json.dumps(config)}) == 3
    assert cluster_workers({"SLURM_JOB_ID": "5", "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "4"}) == 4
    assert cluster_workers({"SLURM_JOB_ID": "5", "SLURM_NTASKS": "4"}) == 1  # a batch script's own process
    assert cluster_workers({}) == 1
    with pytest.raises(InputError, match="TF_CONFIG"):
        cluster_workers({"TF_CONFIG": "{not json"})


def test_an_srun_step_becomes_one_worker_per_task_without_placing_gpus(monkeypatch):
    """Tasks in SLURM_PROCID order over the step's nodes, ports from 8888 up per node; CUDA_VISIBLE_DEVICES
    left to Slurm (TensorFlow's resolver would set it, and fails on nodes without nvidia-smi)."""
    from bpnetz.model.devices import cluster_resolver

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for name, value in (("SLURM_PROCID", "2"), ("SLURM_STEP_NUM_TASKS", "3"), ("SLURM_STEP_NODELIST", "gpu[07-08]"),
                        ("SLURM_STEP_TASKS_PER_NODE", "2,1")):
        monkeypatch.setenv(name, value)
    resolver = cluster_resolver()
    assert resolver.cluster_spec().as_dict() == {"worker": ["gpu07:8888", "gpu07:8889", "gpu08:8888"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 2)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_an_incomplete_srun_environment_is_one_clear_error(monkeypatch):
    from bpnetz.errors import InputError
    from bpnetz.model.devices import cluster_resolver

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_STEP_NODELIST", raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    with pytest.raises(InputError, match="^SLURM_STEP_NODELIST: .*Launch one task per worker with srun"):
        cluster_resolver()


def test_devices_on_a_cluster_are_refused_with_the_fix(monkeypatch):
    """On a cluster each worker trains on the GPUs it sees; --devices N (one host's choice) is one InputError,
    raised before any strategy is made."""
    from bpnetz.errors import InputError
    from bpnetz.model.devices import training_strategy

    config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(InputError, match="--devices 2 chooses devices on one host") as caught:
        training_strategy("2")
    assert "CUDA_VISIBLE_DEVICES" in str(caught.value)
