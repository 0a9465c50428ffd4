"""A model directory as 'bpnetz train' leaves it, with an untrained tiny BPNet: for prediction and SHAP tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def save_model_dir(path: Path, store_path: Path, layout, params: dict, split: dict | None,
                   orig_multi_loss: bool = False):
    """A model directory as 'bpnetz train' leaves it, with an untrained model whose weights are randomised."""
    import keras

    from bpnetz.config import BpnetParams
    from bpnetz.model.bpnet import build_model

    keras.utils.set_random_seed(3)
    model = build_model(BpnetParams(**params), layout, orig_multi_loss=orig_multi_loss)
    rng = np.random.default_rng(5)
    for weight in model.trainable_weights:  # running statistics (batch norm) keep their valid initial values
        weight.assign(rng.normal(0, 0.3, weight.shape).astype(np.float32))
    path.mkdir(parents=True)
    model.save(path / "model.keras")
    (path / "bpnet_params.json").write_text(json.dumps(params))
    if split is not None:
        (path / "splits.json").write_text(json.dumps(split))
    (path / "store.json").write_text(json.dumps({"path": str(store_path), "checksum": "tiny-7",
                                                 "layout": layout.to_dict()}))
    return model
