"""A training run for tests/model/test_resume.py, in its own process (so that the test can SIGKILL it):
``python resume_run.py STORE OUTPUT [SLOW_EPOCH]``. The tiny model of tests/model/test_train.py, 6 epochs; with
SLOW_EPOCH (0-based) that epoch starts with a 2-second pause, a window in which the test kills the run."""

from __future__ import annotations

import sys
import time

import keras

from bpnetz.model.options import TrainOptions
from bpnetz.model.train import train
from tests.model.test_train import SPLITS, tiny_params

OPTIONS = TrainOptions(model_name="m", folds=["0"], epochs=6, batch_size=8, early_stopping_patience=3,
                       reduce_lr_on_plateau_patience=1, seed=11, verbose=0, refit_counts_head=False, cache="ram")


class PauseAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            print(f"paused at epoch {epoch}", flush=True)
            time.sleep(2)


if __name__ == "__main__":
    store, output = sys.argv[1], sys.argv[2]
    extra = [PauseAtEpoch(int(sys.argv[3]))] if len(sys.argv) > 3 else []
    train(store, tiny_params(), SPLITS, output, OPTIONS, callbacks=extra)
