"""A tiny BPNet trained for a few epochs on a simulation with strong motifs: the model the in-silico tests probe.

The simulation (4 chromosomes of 150 kb, 600 peaks, 400/200 bp, one stranded task with controls) plants the
built-in GATA-, AP-1- and CTCF-like motifs; a model with 16 filters learns them in a few epochs. Built once per
test session (measured ~1 min on the 2-core CPU machine, while shared).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

INPUT_LEN, OUTPUT_LEN, MAX_JITTER = 400, 200, 16
SIMULATION = {"n_chroms": 4, "chrom_length": 150_000, "n_peaks": 600, "input_len": INPUT_LEN,
              "output_len": OUTPUT_LEN, "max_jitter": MAX_JITTER, "seed": 3}


@dataclass(frozen=True)
class TrainedExperiment:
    experiment: Path  # the simulation (truth/, genome.fa, data/ …)
    store: Path
    model_dir: Path


#: chr1 held out (validation and the tests' variants), the rest trained on
SPLIT = {"0": {"val": ["chr1"], "test": [], "train": ["chr2", "chr3", "chr4"]}}


def train_tiny(experiment: Path, out: Path, epochs: int = 10, filters: int = 32) -> TrainedExperiment:
    """Build the experiment's store and train one fold (chr1 held out) into ``out``."""
    from bpnetz.build.builder import build_store
    from bpnetz.build.options import BuildOptions
    from bpnetz.config import BpnetParams, Split, Splits
    from bpnetz.model.options import TrainOptions
    from bpnetz.model.train import train

    store = out / "store.zarr"
    cwd = Path.cwd()
    os.chdir(experiment)
    try:
        build_store("input_data.json", experiment / "genome.fa", experiment / "chrom.sizes", store,
                    BuildOptions(input_len=INPUT_LEN, output_len=OUTPUT_LEN, max_jitter=MAX_JITTER, progress=False))
    finally:
        os.chdir(cwd)
    raw = json.loads((experiment / "bpnet_params.json").read_text())
    raw["motif_module_params"]["filters"] = [filters]
    raw["syntax_module_params"].update(filters=filters, num_dilation_layers=3)
    params = BpnetParams.model_validate(raw)
    splits = Splits(folds={k: Split(**v) for k, v in SPLIT.items()})
    options = TrainOptions(epochs=epochs, batch_size=32, early_stopping_patience=100, seed=1, verbose=0,
                           refit_counts_head=True)
    [model_dir] = train(store, params, splits, out / "models", options)
    return TrainedExperiment(experiment, store, model_dir)
