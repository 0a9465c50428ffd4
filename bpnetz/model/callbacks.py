"""The Keras callbacks of :func:`bpnetz.model.train.train` (imports Keras: import this module lazily).

:class:`KeepBestWeights` keeps the weights of the epoch with the lowest validation loss exactly (Keras'
``restore_best_weights`` keeps the last epoch that improved by more than min-delta, which can differ);
:class:`TrainingTime` times the training batches only, for examples/s; :class:`PinStreamEpoch` makes training
epoch e read the stream's epoch e + offset, however often Keras iterates the dataset beforehand; :class:`EpochScalars`
writes TensorBoard scalars with TensorFlow's own summary ops, so the tensorboard package is not needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np


class KeepBestWeights(keras.callbacks.Callback):
    """Remember the weights of the epoch with the lowest ``monitor`` and put them back at the end."""

    def __init__(self, monitor: str = "val_loss"):
        super().__init__()
        self.monitor = monitor
        self.best = math.inf
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best, self.best_epoch, self.best_weights = float(value), epoch, self.model.get_weights()

    def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class TrainingTime(keras.callbacks.Callback):
    """Seconds spent in training batches (validation excluded), for examples/s."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self._began = 0.0
        self._last = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._began = self._last = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds += self._last - self._began


class EpochScalars(keras.callbacks.Callback):
    """TensorBoard scalars per epoch under ``logs/train`` and ``logs/validation`` (tags ``epoch_<metric>``).

    Written with TensorFlow's own summary ops, so the tensorboard package is not needed to write them.
    """

    def __init__(self, log_dir: Path):
        super().__init__()
        import tensorflow as tf

        self._tf = tf
        self._metadata = tf.compat.v1.SummaryMetadata(
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))
        self._writers = {name: tf.summary.create_file_writer(str(log_dir / name))
                         for name in ("train", "validation")}

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        for key, value in (logs or {}).items():
            writer = self._writers["validation" if key.startswith("val_") else "train"]
            with writer.as_default():
                self._tf.summary.write(f"epoch_{key.removeprefix('val_')}", float(value), step=epoch,
                                       metadata=self._metadata)

    def on_train_end(self, logs: Any = None) -> None:
        for writer in self._writers.values():
            writer.close()


class PinStreamEpoch(keras.callbacks.Callback):
    """Set a :class:`~bpnetz.store.stream.LocusStream`'s epoch counter to ``offset + epoch`` as each training epoch
    begins (Keras creates the epoch's iterator after ``on_epoch_begin``), and to the next one as it ends.

    Without it the stream's epoch was the number of iterators created so far: under ``MirroredStrategy`` Keras'
    symbolic build iterates the dataset once more before training, so two devices trained on the data of the
    next epoch (measured: the tiny model's per-epoch losses came out in another order than on one device); a
    resumed run is pinned to the same epochs as an uninterrupted one the same way.
    """

    def __init__(self, stream: Any, offset: int):
        super().__init__()
        self.stream, self.offset = stream, offset

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.stream.epoch = self.offset + epoch

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        # the next epoch, as an iteration per epoch leaves it: a continuous training dataset (one iterator for all
        # epochs) does not advance the counter, and the checkpoint and the counts-head refit after training read it
        self.stream.epoch = self.offset + epoch + 1
