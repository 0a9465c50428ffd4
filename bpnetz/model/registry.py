"""Every custom Keras object of bpnetz, for loading saved models.

Importing this module registers them (package "bpnetz"), so plain ``keras.models.load_model("model.keras")``
works afterwards; :data:`CUSTOM_OBJECTS` can also be passed explicitly as ``custom_objects``.
"""

from __future__ import annotations

from pathlib import Path

import keras

from bpnetz.errors import InputError
from bpnetz.model.bpnet import BPNet, ChannelSelect
from bpnetz.model.losses import CountsMSELoss, CountsPoissonLoss, ProfileMultinomialLoss

CUSTOM_OBJECTS: dict[str, type] = {
    "BPNet": BPNet,
    "ChannelSelect": ChannelSelect,
    "ProfileMultinomialLoss": ProfileMultinomialLoss,
    "CountsMSELoss": CountsMSELoss,
    "CountsPoissonLoss": CountsPoissonLoss,
}


def load_model(path: str | Path, *, compile: bool = True) -> keras.Model:
    """Load a ``.keras`` model (a file, or a model directory holding ``model.keras``) with our objects."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise InputError("no saved model here.", path=path,
                         fix="Point to a model.keras file or a model directory written by 'bpnetz train'.")
    try:
        return keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=compile)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot load the model ({type(err).__name__}: {err}).", path=path,
                         fix="Check that the file is a complete model saved by bpnetz.") from None
