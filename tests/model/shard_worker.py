"""One worker's share of the training stream, for tests/model/test_devices.py (run as its own process, as a
worker of a multi-worker training is): ``python shard_worker.py STORE WORKER WORKERS`` prints, as JSON, the
store rows of each of 3 epochs in yield order (from the loader's own row indices) and the stream's batch count."""

from __future__ import annotations

import json
import sys

from bpnetz.model.data import stream_dataset
from bpnetz.store.stream import LocusStream
from tests.model.test_train import SPLITS

if __name__ == "__main__":
    store, worker, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    stream = LocusStream(store, SPLITS.folds["0"], "train", batch_size=4, reverse_complement="random", seed=7,
                         cache=False, shuffle_loci=8, shard=(worker, workers))
    epochs = []
    for _ in range(3):
        batches = [batch[3]["row"].numpy().tolist() for batch in stream_dataset(stream, with_index=True)]
        epochs.append({"rows": [r for b in batches for r in b], "batches": len(batches)})
    print(json.dumps({"epochs": epochs, "n_batches": stream.n_batches, "block_loci": stream.reader.block_loci}))
