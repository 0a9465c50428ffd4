"""Training on several hosts (bpnetz/model/devices.py): two worker processes on 127.0.0.1 under TF_CONFIG train
one model together. Both exit 0; only the chief writes the model directory, complete and loadable; each epoch the
two workers' loader rows are disjoint and together every training locus (every peak) once; both run the same
steps and end with the same weights and losses; the losses are close to one process's with the same global
batch."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from bpnetz.store import schema
from bpnetz.store.reader import StoreReader
from bpnetz.store.stream import LocusStream
from tests.model.test_train import SPLITS, store  # noqa: F401  (the tiny store fixture)

ROOT = Path(__file__).resolve().parents[2]
#: seconds a worker may take (they start, train 2 tiny epochs and exit in ~30 s on an idle 2-core machine)
WORKER_TIMEOUT = 300
#: the stream epochs of the 2 training epochs (stream epoch 0 is the counts head's calibration, train.py)
TRAINING_EPOCHS = (1, 2)


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (bound together, then released for the workers)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(store_path: Path, tmp_path: Path) -> tuple[list[dict], dict[str, list[float]]]:
    """Both workers' JSON reports, once both exited 0, and the history of the same training in this process
    (run while the workers run)."""
    from bpnetz.model.train import train
    from tests.model.multiworker_run import OPTIONS
    from tests.model.test_train import tiny_params

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("TF_CONFIG", None)
    ports = ",".join(map(str, free_ports(2)))
    script = str(ROOT / "tests/model/multiworker_run.py")
    runs = {name: subprocess.Popen([sys.executable, script, str(store_path), str(tmp_path / name), index, ports],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, index in (("w0", "0"), ("w1", "1"))}
    reports = []
    try:
        (single,) = train(store_path, tiny_params(), SPLITS, tmp_path / "single", OPTIONS)
        for name, process in runs.items():
            out, err = process.communicate(timeout=WORKER_TIMEOUT)
            assert process.returncode == 0, f"{name} exited {process.returncode}:\n{out}\n{err}"
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return reports, json.loads((single / "history.json").read_text())


def test_two_workers_on_localhost_train_one_model_each_peak_once_per_epoch(store, tmp_path):  # noqa: F811
    import keras

    import bpnetz.model.registry  # noqa: F401  (registers our objects for plain keras.models.load_model)

    workers, single = run_workers(store, tmp_path)

    # only the chief (worker 0) wrote into its output directory, everything a model directory holds
    chief_dir = tmp_path / "w0" / "m_split000"
    assert workers[0]["model_dir"] == str(chief_dir)
    assert not (tmp_path / "w1").exists() or not any((tmp_path / "w1").iterdir())
    assert not Path(workers[1]["model_dir"]).exists()  # the other worker's temporary copy is gone
    for name in ("model.keras", "bpnet_params.json", "splits.json", "history.csv", "history.json",
                 "learning_curves.png", "store.json", "training.json"):
        assert (chief_dir / name).is_file(), name
    summary = json.loads((chief_dir / "training.json").read_text())["summary"]
    assert summary["workers"] == 2 and summary["replicas"] == 2

    # each training epoch: shares disjoint, together the whole epoch (every peak once), equal steps
    whole = LocusStream(store, SPLITS.folds["0"], "train", batch_size=8, reverse_complement="random", seed=11,
                        cache=False)
    peaks = np.flatnonzero(StoreReader(store).loci["kind"].to_numpy() == schema.KIND_PEAK)
    train_peaks = np.intersect1d(peaks, whole.selection.rows)
    assert len(train_peaks) > 10
    for epoch in TRAINING_EPOCHS:
        shares = [w["rows"][f"train/{k}/{epoch}"] for k, w in enumerate(workers)]
        assert not set(shares[0]) & set(shares[1]) and abs(len(shares[0]) - len(shares[1])) <= 1
        union = np.sort(shares[0] + shares[1])
        np.testing.assert_array_equal(union, np.sort(whole.selection.rows[whole.selection.epoch_positions(epoch)]))
        np.testing.assert_array_equal(np.intersect1d(union, peaks), train_peaks)
    assert workers[0]["steps"] == workers[1]["steps"] == [math.ceil(len(shares[0]) / 4)] * 2

    # one model: the same weights on both workers, the chief's saved model holding them; the same losses
    for a, b in zip(workers[0]["weights"], workers[1]["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    saved = keras.models.load_model(chief_dir / "model.keras").get_weights()
    for a, b in zip(saved, workers[0]["weights"], strict=True):
        np.testing.assert_allclose(np.ravel(a), b, rtol=1e-6, atol=1e-7)
    assert workers[0]["logs"] == workers[1]["logs"]
    history = json.loads((chief_dir / "history.json").read_text())
    for key, tolerance in (("loss", 0.05), ("val_loss", 0.02)):
        assert all(math.isfinite(v) for v in history[key])
        np.testing.assert_allclose(history[key], [e[key] for e in workers[0]["logs"]], rtol=1e-6)
        # Other batches than in one process (a step joins the two shares' batches), so close, not equal:
        # measured 2.3% and 0.5% (training loss, epochs 1-2), 0.3% and 0.4% (validation loss).
        np.testing.assert_allclose(history[key], single[key], rtol=tolerance, err_msg=key)
