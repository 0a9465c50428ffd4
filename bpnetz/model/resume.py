"""Resumable training: after every completed epoch the whole training state is saved beside the model directory,
and the same command rerun after a kill (SIGKILL included) continues from the last completed epoch.

The checkpoint is ``.<model dir name>.bpnetz-resume`` beside the model directory (:func:`checkpoint_dir`), not
inside the run's temporary output ``.<name>.bpnetz-tmp-*``: a rerun removes that leftover
(:func:`bpnetz.files.atomic.clean_leftovers`) but never the checkpoint, so resuming takes precedence over
cleaning. It is written and read under the model directory's lock (training runs inside
:func:`~bpnetz.files.atomic.output_directory`) and removed once the model directory is swapped in.

State saved (``state.json`` + ``state-<epoch>.npz``; the JSON is renamed into place last, so a kill while saving
leaves the previous epoch's checkpoint whole): the model's weights, the optimizer's variables (Adam's moments,
its step counter and the learning rate, so a plateau's reductions survive), early stopping's and the plateau
schedule's counters and best values, the kept best weights and their epoch, the history so far, the training
seconds, and each stream's epoch counter (so backgrounds, order, jitter and flips continue the same sequence).
Keras' ``BackupAndRestore`` saves weights and the epoch only, not callback states nor the loader's counter.

A checkpoint is used only when its fingerprint (options, params, fold, store path and schema) equals the
rerun's; otherwise it is removed with a notice and training starts afresh. Measured on the tiny test model
(2-core CPU, one thread): a resumed run's final weights equal the uninterrupted run's to float32 rounding
(tests/model/test_resume.py asserts within 1e-5 relative).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bpnetz.errors import notice
from bpnetz.files.atomic import atomic_output, write_text

RESUME_TAG = ".bpnetz-resume"
STATE_FILE = "state.json"
#: options that do not change what is trained (a rerun may change them and still resume)
NEUTRAL_OPTIONS = ("verbose", "threads", "cache", "devices")


def checkpoint_dir(model_dir: str | Path) -> Path:
    """Where the training state of the model directory ``model_dir`` is kept between epochs."""
    model_dir = Path(model_dir).absolute()
    return model_dir.with_name(f".{model_dir.name}{RESUME_TAG}")


def fingerprint(options: Mapping[str, Any], params: Mapping[str, Any], fold: Mapping[str, Any],
                store: Mapping[str, Any]) -> str:
    """A digest of everything that determines the training (options but :data:`NEUTRAL_OPTIONS`)."""
    relevant = {k: v for k, v in options.items() if k not in NEUTRAL_OPTIONS}
    text = json.dumps([relevant, params, fold, store], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _schedule_state(callback: keras.callbacks.Callback) -> dict[str, Any]:
    names = ("wait", "best", "stopped_epoch", "cooldown_counter")
    return {name: float(getattr(callback, name)) if name == "best" else int(getattr(callback, name))
            for name in names if hasattr(callback, name)}


class EpochCheckpoint(keras.callbacks.Callback):
    """Save the training state after every epoch; restore a saved one when training begins.

    ``schedules``: the early-stopping and plateau callbacks (their counters are saved and restored);
    ``keep_best``: the :class:`~bpnetz.model.callbacks.KeepBestWeights`; ``timer``: the
    :class:`~bpnetz.model.callbacks.TrainingTime`; ``streams``: the training and validation
    :class:`~bpnetz.store.stream.LocusStream`. Place it after those callbacks: Keras' callbacks reset their
    counters in ``on_train_begin``, and this one sets them back afterwards.
    """

    def __init__(self, directory: Path, digest: str, *, schedules: Sequence[keras.callbacks.Callback],
                 keep_best: Any, timer: Any, streams: Sequence[Any]):
        super().__init__()
        self.directory, self.digest = Path(directory), digest
        self.schedules, self.keep_best, self.timer, self.streams = list(schedules), keep_best, timer, list(streams)
        self.state: dict[str, Any] | None = self._load_state()
        self.history: dict[str, list[float]] = dict(self.state["history"]) if self.state else {}

    @property
    def initial_epoch(self) -> int:
        """The number of epochs already completed (0 without a usable checkpoint)."""
        return int(self.state["epoch"]) if self.state else 0

    def last_epoch(self, epochs: int) -> int:
        """The ``epochs`` argument of ``fit``: the saved epoch when the saved run had already stopped early."""
        return self.initial_epoch if self.state and self.state.get("stopped") else epochs

    def _load_state(self) -> dict[str, Any] | None:
        path = self.directory / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text())
            usable = state.get("fingerprint") == self.digest and (self.directory / state["arrays"]).is_file()
        except (OSError, ValueError, KeyError, TypeError):
            usable = False
        if not usable:
            notice(f"removed {self.directory}: its training state belongs to other options, data or params "
                   "(or is damaged); training starts from the first epoch.")
            shutil.rmtree(self.directory, ignore_errors=True)
            return None
        return state

    def restore_streams(self) -> None:
        """Set the streams' epoch counters to the saved ones (before any dataset is iterated)."""
        if self.state:
            for stream, epoch in zip(self.streams, self.state["stream_epochs"], strict=True):
                stream.epoch = int(epoch)

    def on_train_begin(self, logs: Any = None) -> None:
        if not self.state:
            return
        with np.load(self.directory / self.state["arrays"]) as arrays:
            self.model.set_weights([arrays[f"model_{i}"] for i in range(self.state["n_model"])])
            self.model.optimizer.build(self.model.trainable_variables)
            for i, variable in enumerate(self.model.optimizer.variables):
                variable.assign(arrays[f"optimizer_{i}"])
            if self.state["n_best"]:
                self.keep_best.best_weights = [arrays[f"best_{i}"] for i in range(self.state["n_best"])]
        for callback, saved in zip(self.schedules, self.state["schedules"], strict=True):
            for name, value in saved.items():
                setattr(callback, name, value)
        self.keep_best.best, self.keep_best.best_epoch = self.state["best"], self.state["best_epoch"]
        self.timer.seconds = self.state["train_seconds"]

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.directory.mkdir(parents=True, exist_ok=True)
        arrays_name = f"state-{epoch + 1}.npz"
        model_weights = self.model.get_weights()
        optimizer_values = [np.asarray(v) for v in self.model.optimizer.variables]
        best = self.keep_best.best_weights or []
        with atomic_output(self.directory / arrays_name) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **{f"model_{i}": w for i, w in enumerate(model_weights)},
                     **{f"optimizer_{i}": v for i, v in enumerate(optimizer_values)},
                     **{f"best_{i}": w for i, w in enumerate(best)})
        state = {"fingerprint": self.digest, "epoch": epoch + 1, "arrays": arrays_name,
                 "n_model": len(model_weights), "n_best": len(best), "history": self.history,
                 "schedules": [_schedule_state(c) for c in self.schedules], "best": float(self.keep_best.best),
                 "best_epoch": int(self.keep_best.best_epoch), "train_seconds": float(self.timer.seconds),
                 "stream_epochs": [int(s.epoch) for s in self.streams], "stopped": bool(self.model.stop_training)}
        write_text(self.directory / STATE_FILE, json.dumps(state) + "\n")
        for old in self.directory.glob("state-*.npz"):
            if old.name != arrays_name:
                old.unlink(missing_ok=True)
