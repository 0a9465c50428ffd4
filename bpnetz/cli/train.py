"""``bpnetz train``: train one BPNet model per splits.json fold from a store (see bpnetz.model.train).

:func:`add_training_arguments` and :func:`training_options` are shared with the reference-compatible
``bpnet-train``, which builds or reuses a store from raw inputs and then calls the same :func:`train`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def add_training_arguments(parser: argparse.ArgumentParser, *, params_required: bool = True) -> None:
    """Training flags, with the reference's bpnet-train names (and short options) where it has them."""
    parser.add_argument("--params", "--model-arch-params-json", dest="params", required=params_required,
                        help="bpnet_params.json (the architecture)")
    parser.add_argument("--splits", "-s", required=True, help="splits.json: one model per fold key")
    parser.add_argument("--output-dir", "-d", default=".", help="where model directories go (default .)")
    parser.add_argument("--model-name", "--model-output-filename", dest="model_name", default="model",
                        help="models are saved as <output-dir>/<name>_split000, … (default 'model')")
    parser.add_argument("--folds", nargs="+", default=None, help="train only these fold keys (default: all)")
    parser.add_argument("--chroms", nargs="+", default=None,
                        help="all chromosomes to consider: training = these minus val and test when a fold has "
                             "no 'train' list (default: the store's chromosomes)")
    parser.add_argument("--epochs", "-e", type=int, default=100, help="maximum epochs (100)")
    parser.add_argument("--batch-size", "-b", type=int, default=64, help="examples per batch (64)")
    parser.add_argument("--learning-rate", "-L", type=float, default=0.004, help="initial Adam learning rate")
    parser.add_argument("--min-learning-rate", "-l", type=float, default=1e-4, help="floor of LR reduction")
    parser.add_argument("--early-stopping-patience", type=int, default=5, help="epochs without improvement (5)")
    parser.add_argument("--early-stopping-min-delta", type=float, default=1e-3,
                        help="smallest validation-loss decrease that counts as an improvement (1e-3)")
    parser.add_argument("--reduce-lr-on-plateau-patience", type=int, default=2, help="epochs before LR cut (2)")
    parser.add_argument("--lr-reduction-factor", type=float, default=0.5, help="LR multiplier on plateau (0.5)")
    parser.add_argument("--reverse-complement", choices=("random", "double", "none"), default="random",
                        help="augmentation: flip each example with p=0.5 (random, default), follow every batch "
                             "by its reverse complement (double), or none")
    parser.add_argument("--reverse-complement-augmentation", dest="reverse_complement", action="store_const",
                        const="double", help="the reference's flag: same as --reverse-complement double")
    parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True,
                        help="shuffle training loci every epoch (default on)")
    parser.add_argument("--mnll-loss-sample-weight", type=float, default=1.0,
                        help="profile-loss weight of peaks (1.0)")
    parser.add_argument("--mnll-loss-background-sample-weight", type=float, default=0.0,
                        help="profile-loss weight of background loci (0.0)")
    parser.add_argument("--orig-multi-loss", action="store_true",
                        help="one multinomial per strand and one log count per track (the original BPNet loss)")
    parser.add_argument("--refit-counts-head", action=argparse.BooleanOptionalAction, default=True,
                        help="after training, set the counts output to the trained head or a ridge refit of its "
                             "last layer, calibrated on validation peaks, whichever predicts them best (default on; "
                             "MSE counts loss only)")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 compute (GPU)")
    parser.add_argument("--xla", action="store_true", help="compile the training step with XLA")
    parser.add_argument("--seed", type=int, default=1234, help="seed of weights, sampling and augmentation")
    parser.add_argument("--cache", choices=("auto", "ram", "disk"), default="auto",
                        help="keep the selected loci in RAM, or stream them from disk (auto: RAM when they use "
                             "under 40%% of the available memory)")
    parser.add_argument("--threads", "-t", type=int, default=None, help="TensorFlow CPU threads (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summaries")


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`bpnetz.model.train.train` from parsed training flags."""
    return dict(model_name=args.model_name, chroms=args.chroms, epochs=args.epochs, batch_size=args.batch_size,
                learning_rate=args.learning_rate, min_learning_rate=args.min_learning_rate,
                early_stopping_patience=args.early_stopping_patience,
                early_stopping_min_delta=args.early_stopping_min_delta,
                reduce_lr_on_plateau_patience=args.reduce_lr_on_plateau_patience,
                lr_reduction_factor=args.lr_reduction_factor, reverse_complement=args.reverse_complement,
                shuffle=args.shuffle, mnll_loss_sample_weight=args.mnll_loss_sample_weight,
                mnll_loss_background_sample_weight=args.mnll_loss_background_sample_weight,
                orig_multi_loss=args.orig_multi_loss, refit_counts_head=args.refit_counts_head,
                mixed_precision=args.mixed_precision, xla=args.xla, seed=args.seed,
                cache={"auto": "auto", "ram": True, "disk": False}[args.cache],
                threads=args.threads, folds=args.folds, params_path=args.params, verbose=0 if args.quiet else 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnetz train",
        description="Train one BPNet model per splits.json fold from a store built by 'bpnetz build'. Each model "
                    "directory <output-dir>/<name>_split000 holds the best weights (lowest validation loss) as "
                    "model.keras, the params and fold used, the history (CSV/JSON), TensorBoard logs, learning "
                    "curves and the store's checksum.")
    parser.add_argument("--store", required=True, help="store.zarr written by 'bpnetz build'")
    parser.add_argument("--input-seq-len", type=int, default=None,
                        help="optional check: must equal the params' input_len and the store's")
    parser.add_argument("--output-len", type=int, default=None,
                        help="optional check: must equal the params' output_profile_len and the store's")
    add_training_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from bpnetz.config import BpnetParams, Splits
    from bpnetz.model.train import train

    params = BpnetParams.load(args.params)
    splits = Splits.load(args.splits)
    train(args.store, params, splits, args.output_dir, input_len=args.input_seq_len, output_len=args.output_len,
          **training_options(args))
    return 0
