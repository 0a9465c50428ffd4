"""The options of :func:`bpnetz.model.train.train`, defined once: the CLI (``bpnetz train``, ``bpnet-train``) and
the Python API build a :class:`TrainOptions`; the argparse flags take their defaults from it.

Before this object, each option was written out five times (flags, a flag-to-keyword mapping, ``train``'s
signature, a dict passed to the folds and the dict's lookups) and ``cache`` changed its spelling on the way
(flag ``ram``/``disk``, keyword ``True``/``False``). Now the value is the flag's value everywhere and
:attr:`TrainOptions.stream_cache` turns it into the loader's argument at the one place it is used.
Pure data: importing this module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bpnetz.errors import InputError

DEFAULT_SEED = 1234
CACHE_CHOICES = ("auto", "ram", "disk")
REVERSE_COMPLEMENT_CHOICES = ("random", "double", "none")


@dataclass(frozen=True)
class TrainOptions:
    """How to train: every field has the default of the matching ``bpnetz train`` flag.

    ``chroms``: all chromosomes considered (training = chroms minus val and test when a fold has no "train";
    default: the store's). ``folds``: train only these splits.json keys (default: all). ``reverse_complement``:
    "random" (flip each example with p = 0.5), "double" (the reference's doubled batches) or "none". ``cache``:
    "auto" (RAM when the loci use under 40% of the available memory), "ram" or "disk" (streamed).
    ``counts_loss_background_sample_weight``: the counts-loss weight of background loci (peaks weigh 1; the
    profile loss has its own pair of weights).
    ``refit_counts_head``: after training, set the counts output to the trained head or a ridge refit of its
    last layer, calibrated on validation peaks, whichever predicts them best (MSE counts loss only; see
    :mod:`bpnetz.model.counts_head`); the summary reports the validation-peak log-count MSE beside the constant
    predictor's either way.
    ``input_len``/``output_len``, when given (command line), must match the params and the store;
    ``params_path`` and ``splits_path`` name those files in error messages. ``verbose``: 0 silent, 1 Keras
    progress bars and summaries, 2 one line per epoch. ``threads``: TensorFlow CPU threads (default: all).
    ``devices``: "all" or N, the devices trained on (``batch_size`` is the global batch; see
    :mod:`bpnetz.model.devices`).
    """

    model_name: str = "model"
    folds: Sequence[str] | None = None
    chroms: Sequence[str] | None = None
    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 0.004
    min_learning_rate: float = 1e-4
    early_stopping_patience: int = 5
    early_stopping_min_delta: float = 1e-3
    reduce_lr_on_plateau_patience: int = 2
    lr_reduction_factor: float = 0.5
    reverse_complement: str = "random"
    shuffle: bool = True
    mnll_loss_sample_weight: float = 1.0
    mnll_loss_background_sample_weight: float = 0.0
    counts_loss_background_sample_weight: float = 1.0
    orig_multi_loss: bool = False
    refit_counts_head: bool = True
    mixed_precision: bool = False
    xla: bool = False
    seed: int = DEFAULT_SEED
    cache: str = "auto"
    threads: int | None = None
    devices: str = "all"
    input_len: int | None = None
    output_len: int | None = None
    params_path: str = "bpnet_params.json"
    splits_path: str = "splits.json"
    verbose: int = 1

    def __post_init__(self) -> None:
        from bpnetz.model.devices import check_devices

        object.__setattr__(self, "devices", check_devices(self.devices))
        for name, choices in (("cache", CACHE_CHOICES), ("reverse_complement", REVERSE_COMPLEMENT_CHOICES)):
            if getattr(self, name) not in choices:
                raise InputError(f"{name} {getattr(self, name)!r} is not one of {', '.join(choices)}.",
                                 fix=f"Use one of {', '.join(choices)}.")

    @property
    def stream_cache(self) -> bool | str:
        """The loader's ``cache`` argument: "auto", True (RAM) or False (disk)."""
        return {"auto": "auto", "ram": True, "disk": False}[self.cache]

    def record(self) -> dict[str, Any]:
        """The options as JSON-ready values (written to each model's training.json)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
