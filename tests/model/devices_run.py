"""A training run on a CPU split into two logical devices, for tests/model/test_devices.py (in its own process:
the split must happen before TensorFlow starts). ``python devices_run.py STORE OUTPUT DEVICES``: trains the tiny
model of tests/model/test_train.py for 3 epochs with a global batch of 8 and prints the history as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tensorflow as tf

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

from bpnetz.model.options import TrainOptions
from bpnetz.model.train import train
from tests.model.test_train import SPLITS, tiny_params

if __name__ == "__main__":
    store, output, devices = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    options = TrainOptions(model_name="m", folds=["0"], epochs=3, batch_size=8, seed=11, verbose=0,
                           refit_counts_head=False, cache="ram", devices=devices)
    (model_dir,) = train(store, tiny_params(), SPLITS, output, options)
    print(json.dumps(json.loads((model_dir / "history.json").read_text())))
