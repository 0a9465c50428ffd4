"""Resumable training (bpnetz/model/resume.py): a run SIGKILLed during epoch 3 of 6 and rerun with the same
command resumes after epoch 2 and ends with the uninterrupted run's model (same best epoch, history and
weights within float32 rounding); the checkpoint beside the model directory outlives the removal of the killed
run's temporary output, and is removed when the model is complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bpnetz.model.train import CALIBRATION_EPOCHS
from tests.model.test_train import store  # noqa: F401  (the tiny store fixture)

ROOT = Path(__file__).resolve().parents[2]


def run_training(store_path: Path, output: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, str(ROOT / "tests/model/resume_run.py"), str(store_path), str(output),
                             *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return out


def saved_weights(model_dir: Path) -> list[np.ndarray]:
    import keras

    import bpnetz.model.registry  # noqa: F401

    return keras.models.load_model(model_dir / "model.keras", compile=False).get_weights()


def test_a_run_killed_in_epoch_3_resumes_there_and_ends_with_the_uninterrupted_model(store, tmp_path):  # noqa: F811
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    uninterrupted = run_training(store, whole)
    killed = run_training(store, resumed, "2")  # pauses 2 s as epoch index 2 (the third epoch) begins
    state = resumed / ".m_split000.bpnetz-resume" / "state.json"
    deadline = time.monotonic() + 300
    while not (state.is_file() and json.loads(state.read_text())["epoch"] == 2):
        assert killed.poll() is None and time.monotonic() < deadline, killed.communicate()[0]
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    # the training stream's counter is saved as the next epoch's (one iterator runs all epochs; the callback sets it)
    assert json.loads(state.read_text())["stream_epochs"][0] == CALIBRATION_EPOCHS + 2
    assert list(resumed.glob(".m_split000.bpnetz-tmp-*")), "the killed run left its temporary output"
    assert not (resumed / "m_split000").exists()

    out = finished(run_training(store, resumed))  # the same command again
    assert "resuming m_split000 after epoch 2" in out
    assert not list(resumed.glob(".m_split000.bpnetz-*")), "leftover and checkpoint are gone once the model is in"
    finished(uninterrupted)

    records = [json.loads((d / "m_split000" / "training.json").read_text()) for d in (whole, resumed)]
    summaries = [r.get("summary", r) for r in records]
    assert summaries[0]["best_epoch"] == summaries[1]["best_epoch"]
    assert summaries[0]["epochs_run"] == summaries[1]["epochs_run"] == 6
    histories = [json.loads((d / "m_split000" / "history.json").read_text()) for d in (whole, resumed)]
    assert histories[0].keys() == histories[1].keys()
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-4, err_msg=key)
    for a, b in zip(saved_weights(whole / "m_split000"), saved_weights(resumed / "m_split000"), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_a_checkpoint_of_other_options_is_discarded(store, tmp_path):  # noqa: F811
    """A leftover state whose fingerprint differs (another run's) is removed with a notice; training starts at
    epoch 1 and completes."""
    checkpoint = tmp_path / ".m_split000.bpnetz-resume"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text(json.dumps({"fingerprint": "other", "epoch": 4, "arrays": "x.npz"}))
    out = finished(run_training(store, tmp_path))
    assert "training starts from the first epoch" in out and "resuming" not in out
    assert json.loads((tmp_path / "m_split000" / "history.json").read_text())
    assert not checkpoint.exists()


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_devices_must_be_all_or_a_positive_number(value):
    from bpnetz.errors import InputError
    from bpnetz.model.options import TrainOptions

    with pytest.raises(InputError, match="--devices"):
        TrainOptions(devices=value)
