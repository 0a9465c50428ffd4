"""``bpnetz train``: train one BPNet model per splits.json fold from a store (see bpnetz.model.train).

:func:`add_training_arguments` and :func:`training_options` are shared with the reference-compatible
``bpnet-train``, which builds or reuses a store from raw inputs and then calls the same :func:`train`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from bpnetz.cli import (
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from bpnetz.cli.options import from_args
from bpnetz.model.options import CACHE_CHOICES, REVERSE_COMPLEMENT_CHOICES, TrainOptions

DEFAULTS = TrainOptions()


def add_training_arguments(parser: argparse.ArgumentParser, *, params_required: bool = True) -> None:
    """Training flags, with the reference's bpnet-train names (and short options) where it has them; each ``dest``
    is a :class:`TrainOptions` field and takes its default from there."""
    parser.add_argument("--params", "--model-arch-params-json", dest="params", required=params_required,
                        help="bpnet_params.json (the architecture)")
    parser.add_argument("--splits", "-s", required=True, help="splits.json: one model per fold key")
    parser.add_argument("--output-dir", "-d", default=".", help="where model directories go (default .)")
    parser.add_argument("--model-name", "--model-output-filename", dest="model_name", default=DEFAULTS.model_name,
                        help="models are saved as <output-dir>/<name>_split000, … (default '%(default)s')")
    parser.add_argument("--folds", nargs="+", default=None, help="train only these fold keys (default: all)")
    parser.add_argument("--chroms", nargs="+", default=None,
                        help="all chromosomes to consider: training = these minus val and test when a fold has "
                             "no 'train' list (default: the store's chromosomes)")
    parser.add_argument("--epochs", "-e", type=positive_int, default=DEFAULTS.epochs,
                        help="maximum epochs (%(default)s)")
    parser.add_argument("--batch-size", "-b", type=positive_int, default=DEFAULTS.batch_size,
                        help="examples per batch (%(default)s)")
    parser.add_argument("--learning-rate", "-L", type=positive_float, default=DEFAULTS.learning_rate,
                        help="initial Adam learning rate")
    parser.add_argument("--min-learning-rate", "-l", type=non_negative_float, default=DEFAULTS.min_learning_rate,
                        help="floor of LR reduction")
    parser.add_argument("--early-stopping-patience", type=non_negative_int, default=DEFAULTS.early_stopping_patience,
                        help="epochs without improvement (%(default)s)")
    parser.add_argument("--early-stopping-min-delta", type=non_negative_float,
                        default=DEFAULTS.early_stopping_min_delta,
                        help="smallest validation-loss decrease that counts as an improvement (%(default)s)")
    parser.add_argument("--reduce-lr-on-plateau-patience", type=non_negative_int,
                        default=DEFAULTS.reduce_lr_on_plateau_patience,
                        help="epochs before LR cut (%(default)s)")
    parser.add_argument("--lr-reduction-factor", type=fraction, default=DEFAULTS.lr_reduction_factor,
                        help="LR multiplier on plateau (%(default)s)")
    parser.add_argument("--reverse-complement", choices=REVERSE_COMPLEMENT_CHOICES,
                        default=DEFAULTS.reverse_complement,
                        help="augmentation: flip each example with p=0.5 (random, default), follow every batch "
                             "by its reverse complement (double), or none")
    parser.add_argument("--reverse-complement-augmentation", dest="reverse_complement", action="store_const",
                        const="double", help="the reference's flag: same as --reverse-complement double")
    parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=DEFAULTS.shuffle,
                        help="shuffle training loci every epoch (default on)")
    parser.add_argument("--mnll-loss-sample-weight", type=non_negative_float, default=DEFAULTS.mnll_loss_sample_weight,
                        help="profile-loss weight of peaks (%(default)s)")
    parser.add_argument("--mnll-loss-background-sample-weight", type=non_negative_float,
                        default=DEFAULTS.mnll_loss_background_sample_weight,
                        help="profile-loss weight of background loci (%(default)s)")
    parser.add_argument("--counts-loss-background-sample-weight", type=non_negative_float,
                        default=DEFAULTS.counts_loss_background_sample_weight,
                        help="counts-loss weight of background loci (%(default)s; peaks weigh 1)")
    parser.add_argument("--orig-multi-loss", action="store_true",
                        help="one multinomial per strand and one log count per track (the original BPNet loss)")
    parser.add_argument("--refit-counts-head", action=argparse.BooleanOptionalAction,
                        default=DEFAULTS.refit_counts_head,
                        help="after training, set the counts output to the trained head or a ridge refit of its "
                             "last layer, calibrated on validation peaks, whichever predicts them best (default on; "
                             "MSE counts loss only)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of weights, sampling and augmentation")
    _add_hardware_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summaries")


def _add_hardware_arguments(parser: argparse.ArgumentParser) -> None:
    """How training uses the machine: precision, XLA, the store cache, threads and devices."""
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 compute (GPU)")
    parser.add_argument("--xla", action="store_true", help="compile the training step with XLA")
    parser.add_argument("--cache", choices=CACHE_CHOICES, default=DEFAULTS.cache,
                        help="keep the selected loci in RAM, or stream them from disk (auto: RAM when they use "
                             "under 40%% of the available memory)")
    parser.add_argument("--threads", "-t", type=positive_int, default=None,
                        help="TensorFlow CPU threads (default: all)")
    parser.add_argument("--devices", default=DEFAULTS.devices,
                        help="train on all devices of this host (all, default) or the first N (GPUs, else logical "
                             "CPUs); --batch-size is the global batch, split across them (several hosts: set "
                             "TF_CONFIG or run one srun task per host; see bpnetz/model/devices.py)")


def training_options(args: argparse.Namespace, **overrides: Any) -> TrainOptions:
    """:class:`TrainOptions` from parsed training flags (``overrides`` win)."""
    return from_args(TrainOptions, args, **{"params_path": args.params, "splits_path": args.splits,
                                            "verbose": 0 if args.quiet else 1, **overrides})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnetz train",
        description="Train one BPNet model per splits.json fold from a store built by 'bpnetz build'. Each model "
                    "directory <output-dir>/<name>_split000 holds the best weights (lowest validation loss) as "
                    "model.keras, the params and fold used, the history (CSV/JSON), TensorBoard logs, learning "
                    "curves and the store's checksum.")
    parser.add_argument("--store", required=True, help="store.zarr written by 'bpnetz build'")
    parser.add_argument("--input-seq-len", dest="input_len", type=positive_int, default=None,
                        help="optional check: must equal the params' input_len and the store's")
    parser.add_argument("--output-len", dest="output_len", type=positive_int, default=None,
                        help="optional check: must equal the params' output_profile_len and the store's")
    add_training_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from bpnetz.config import BpnetParams, Splits
    from bpnetz.model.train import train

    params = BpnetParams.load(args.params)
    splits = Splits.load(args.splits)
    train(args.store, params, splits, args.output_dir, training_options(args))
    return 0
