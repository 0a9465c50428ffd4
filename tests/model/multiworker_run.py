"""One worker of a two-process training on 127.0.0.1, for tests/model/test_multiworker.py (each worker is its own
process, as on separate hosts): ``python multiworker_run.py STORE OUTPUT INDEX PORT0,PORT1`` sets TF_CONFIG,
trains the tiny model of tests/model/test_train.py for 2 epochs with a global batch of 8 and prints, as JSON,
each epoch's logs, the store rows the loader yielded per "subset/worker share/stream epoch", the steps run per
epoch, the final weights (to compare the workers' copies) and the model directory. :data:`OPTIONS` are the
training's options."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    store, output, index, ports = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                          "task": {"type": "worker", "index": index}})

import keras
import numpy as np

from bpnetz.model.options import TrainOptions
from bpnetz.model.train import train
from bpnetz.store.stream import LocusStream
from tests.model.test_train import SPLITS, tiny_params

OPTIONS = TrainOptions(model_name="m", folds=["0"], epochs=2, batch_size=8, seed=11, verbose=0,
                       refit_counts_head=False, cache="ram")
ROWS: dict[str, list[int]] = {}
_elements = LocusStream.elements


def recorded_elements(stream: LocusStream, epoch: int):
    """The loader's elements, their store rows recorded under "subset/share/epoch" as they are produced."""
    key = f"{stream.subset}/{'all' if stream.shard is None else stream.shard[0]}/{epoch}"
    ROWS[key] = []
    for element in _elements(stream, epoch):
        ROWS[key].extend(np.asarray(element["row"]).ravel().tolist())
        yield element


class Steps(keras.callbacks.Callback):
    """Training steps and logs per epoch, and the final weights."""

    def __init__(self):
        super().__init__()
        self.steps: list[int] = []
        self.logs: list[dict[str, float]] = []
        self.weights: list[list[float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append({k: float(v) for k, v in (logs or {}).items()})

    def on_train_end(self, logs=None):
        self.weights = [np.asarray(w, np.float64).ravel().tolist() for w in self.model.get_weights()]


if __name__ == "__main__":
    LocusStream.elements = recorded_elements
    steps = Steps()
    (model_dir,) = train(store, tiny_params(), SPLITS, output, OPTIONS, callbacks=[steps])
    print(json.dumps({"logs": steps.logs, "rows": ROWS, "steps": steps.steps, "weights": steps.weights,
                      "model_dir": str(model_dir)}))
