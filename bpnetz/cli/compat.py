"""The reference tool's ``bpnet-*`` console scripts, built on the bpnetz library.

Each accepts the reference's flags and defaults (see the README's compatibility table) so existing scripts run
unchanged; flags the reference accepted but ignored are accepted and ignored with a one-line notice.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bpnetz.cli import non_negative_int, positive_int, run_guarded
from bpnetz.errors import InputError


def _delegate(module: str, prog: str, argv: Sequence[str] | None) -> int:
    """Run ``bpnetz.cli.<module>.main`` under the reference's program name, with bpnetz's error handling."""
    main = importlib.import_module(f"bpnetz.cli.{module}").main
    return run_guarded(lambda args: main(args, prog=prog), sys.argv[1:] if argv is None else argv)


def bpnet_counts_loss_weight(argv: Sequence[str] | None = None) -> int:
    """``bpnet-counts-loss-weight``: print the suggested counts loss weight."""
    return _delegate("counts_loss_weight", "bpnet-counts-loss-weight", argv)


def bpnet_outliers(argv: Sequence[str] | None = None) -> int:
    """``bpnet-outliers``: remove outlier peaks by the reference's quantile rule."""
    return _delegate("outliers", "bpnet-outliers", argv)


def bpnet_gc_reference(argv: Sequence[str] | None = None) -> int:
    """``bpnet-gc-reference``: GC content of genome-wide windows."""
    return _delegate("gc_reference", "bpnet-gc-reference", argv)


def bpnet_gc_background(argv: Sequence[str] | None = None) -> int:
    """``bpnet-gc-background``: GC-matched background loci."""
    return _delegate("gc_background", "bpnet-gc-background", argv)


def bpnet_predict(argv: Sequence[str] | None = None) -> int:
    """``bpnet-predict``: predictions, metrics and bigWigs with the reference's flags."""
    from bpnetz.cli.predict import bpnet_predict_main

    return run_guarded(bpnet_predict_main, sys.argv[1:] if argv is None else argv)


def bpnet_shap(argv: Sequence[str] | None = None) -> int:
    """``bpnet-shap``: DeepLIFT-SHAP contribution scores with the reference's flags."""
    return _delegate("shap", "bpnet-shap", argv)


# ------------------------------------------------------------------------------------------------- bpnet-train

TRAIN_IGNORED = ("exclude_chroms", "bias_input_data", "bias_model_arch_params_json")


def _train_parser() -> argparse.ArgumentParser:
    """bpnet-train's flags: the training flags of ``bpnetz train`` plus the raw inputs and the reference's extras."""
    from bpnetz.build.options import BuildOptions
    from bpnetz.cli.train import add_training_arguments

    parser = argparse.ArgumentParser(prog="bpnet-train", description="Train BPNet models from raw inputs (the "
                                     "store is built once and cached by content under the output directory).")
    parser.add_argument("--input-data", "-i", required=True, help="input_data.json")
    parser.add_argument("--reference-genome", "-g", required=True, help="genome FASTA")
    parser.add_argument("--chrom-sizes", "-c", required=True, help="chromosome sizes")
    parser.add_argument("--input-seq-len", type=positive_int, default=None,
                        help="input length (default: the params' input_len; the reference's default 3088 is "
                             "only used when the params file is not given)")
    parser.add_argument("--output-len", type=positive_int, default=None, help="output length (default: the params')")
    parser.add_argument("--max-jitter", type=non_negative_int, default=BuildOptions.max_jitter,
                        help="maximum jitter (%(default)s)")
    parser.add_argument("--model-arch-name", default="BPNet", help="must be BPNet")
    parser.add_argument("--sequence-generator-name", default="BPNet", help="must be BPNet")
    parser.add_argument("--automate-filenames", action="store_true",
                        help="put the models in a new <output-dir>/<timestamp>_<tag> directory")
    parser.add_argument("--tag-length", type=int, default=6, help="length of the random tag (6)")
    parser.add_argument("--time-zone", default=None, help="time zone of the timestamp (default: local)")
    for name in TRAIN_IGNORED:
        parser.add_argument("--" + name.replace("_", "-"), nargs="*", help=argparse.SUPPRESS)
    add_training_arguments(parser, params_required=False)
    return parser


def _automated_output_dir(output_dir: str, tag_length: int, time_zone: str | None) -> Path:
    """``<output_dir>/<YYYY-MM-DD_HH_MM_SS>_<random tag>``, the reference's automated model folder."""
    import datetime
    import secrets
    import string
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(time_zone) if time_zone else None
    except ZoneInfoNotFoundError:
        raise InputError(f"unknown time zone {time_zone!r}.", fix="Use an IANA name such as US/Pacific.") from None
    stamp = datetime.datetime.now(zone).strftime("%Y-%m-%d_%H_%M_%S")
    tag = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(tag_length))
    return Path(output_dir) / f"{stamp}_{tag}"


def _run_bpnet_train(argv: Sequence[str] | None) -> int:
    from bpnetz.build.builder import find_or_build_store
    from bpnetz.build.options import BuildOptions
    from bpnetz.cli.train import training_options
    from bpnetz.config import BpnetParams, Splits
    from bpnetz.model.train import train
    from bpnetz.predict.predict import STORE_CACHE_ENV

    args = _train_parser().parse_args(argv)
    for name in ("model_arch_name", "sequence_generator_name"):
        if getattr(args, name) != "BPNet":
            raise InputError(f"--{name.replace('_', '-')} {getattr(args, name)!r} is not supported; "
                             "bpnetz trains BPNet.", fix="Use BPNet.")
    for name in TRAIN_IGNORED:
        if getattr(args, name) is not None:
            print(f"note: --{name.replace('_', '-')} is accepted for compatibility and ignored, as the reference "
                  "ignores it.", file=sys.stderr)
    if args.params is not None:
        params = BpnetParams.load(args.params)
    else:
        params = BpnetParams(input_len=args.input_seq_len or 3088, output_profile_len=args.output_len or 1000)
    input_len = args.input_seq_len or params.input_len
    output_len = args.output_len or params.output_profile_len
    output_dir = (_automated_output_dir(args.output_dir, args.tag_length, args.time_zone)
                  if args.automate_filenames else Path(args.output_dir))
    cache_dir = Path(os.environ.get(STORE_CACHE_ENV) or output_dir / ".bpnetz-stores")
    build = BuildOptions(input_len=input_len, output_len=output_len, max_jitter=args.max_jitter,
                         chroms=args.chroms, progress=not args.quiet)
    store = find_or_build_store(cache_dir, args.input_data, args.reference_genome, args.chrom_sizes, build)
    options = training_options(args, input_len=input_len, output_len=output_len,
                               params_path=args.params or "(default BPNet parameters)")
    train(store, params, Splits.load(args.splits), output_dir, options)
    return 0


def bpnet_train(argv: Sequence[str] | None = None) -> int:
    """``bpnet-train``: train from raw inputs with the reference's flags and defaults."""
    return run_guarded(_run_bpnet_train, sys.argv[1:] if argv is None else argv)
