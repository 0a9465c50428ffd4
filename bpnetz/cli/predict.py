"""``bpnetz predict`` and the reference-compatible ``bpnet-predict``: predictions, metrics, pictures and bigWigs.

:func:`add_prediction_arguments` defines the flags both share; :func:`prediction_options` turns parsed flags into
a :class:`~bpnetz.predict.options.PredictOptions` for :func:`bpnetz.predict.predict.predict`. ``bpnet-predict``
(:func:`bpnet_predict_main`) adds the reference's remaining flags: ``--sequence-generator-name``, ``--input-seq-len``,
``--output-len`` (checked against the model), ``--threads``, ``--automate-filenames``, ``--time-zone``; ``--chroms
None`` and ``--test-indices-file None`` mean "not given", as in the reference.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bpnetz.cli import positive_int
from bpnetz.cli.options import from_args
from bpnetz.errors import InputError
from bpnetz.predict.options import SUBSETS, PredictOptions

DEFAULTS = PredictOptions()


DESCRIPTION = """\
Predict with a trained model (a model directory written by 'bpnetz train') on the peaks of a store: by default
the test chromosomes of the model's split. Writes <model>_predictions.h5, the reference's metric files
(pearson.txt, spearman.txt, jsd.txt, per-metric .npz), metrics.json with the model, a position-independent
baseline and a binomial-thinning upper bound side by side, a log-count scatter and top-peak profile PNGs, and
with --generate-predicted-profile-bigWigs one bigWig of predicted counts per track. With --regions or --tile it
predicts whole regions from the FASTA instead and writes only bigWigs.
"""


def _none_word(value: str) -> str | None:
    """The reference writes the word None for "not given"."""
    return None if value == "None" else value


def add_prediction_arguments(parser: argparse.ArgumentParser, *, window_required: bool = False) -> None:
    """The prediction flags shared by ``bpnetz predict`` and ``bpnet-predict``."""
    parser.add_argument("--model", "-m", required=True, help="model directory (…/model_split000) or its .keras file")
    source = parser.add_argument_group("store (one of)")
    source.add_argument("--store", help="a store built by 'bpnetz build'")
    source.add_argument("--input-data", help="input_data.json: the store is found in (or built into) the cache")
    parser.add_argument("--reference-genome", "-g", help="genome FASTA (raw inputs, --regions/--tile)")
    parser.add_argument("--chrom-sizes", "-s", help="chrom.sizes (raw inputs, bigWigs, --tile)")
    parser.add_argument("--store-cache", dest="cache_dir", help="directory of stores built from raw inputs "
                                              "(default: $BPNETZ_STORE_CACHE, else beside the model directory)")
    which = parser.add_argument_group("loci")
    which.add_argument("--split", choices=SUBSETS, default=DEFAULTS.split,
                       help="chromosomes of the model's split to predict (default %(default)s)")
    which.add_argument("--chroms", nargs="+", type=_none_word, default=None,
                       help="predict these chromosomes instead of the split's (the word None: not given)")
    which.add_argument("--include-background", action="store_true", help="predict background loci too")
    which.add_argument("--test-indices-file", dest="test_indices", type=_none_word, default=None,
                       help="file of 0-based positions (one per line) among the selected loci in genome order")
    which.add_argument("--regions", help="BED of regions to tile and predict from the FASTA (no metrics)")
    which.add_argument("--tile", nargs="+", metavar="CHROM", help="tile and predict whole chromosomes")
    parser.add_argument("--output-dir", "-o", required=True, help="directory for every output (created)")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size,
                        help="loci per batch (%(default)s)")
    parser.add_argument("--reverse-complement-average", action="store_true",
                        help="average each prediction with that of the reverse complement, mapped back")
    parser.add_argument("--output-window-size", type=positive_int, required=window_required, default=None,
                        help="centre crop of the output window to evaluate and write (default: all of it)")
    parser.add_argument("--set-bias-as-zero", action="store_true", help="zero the bias (control) inputs")
    parser.add_argument("--generate-predicted-profile-bigWigs", dest="generate_bigwigs", action="store_true",
                        help="one bigWig of predicted counts per track")
    parser.add_argument("--orig-multi-loss", action="store_true", default=None,
                        help="the model predicts one log count per track (read from the model when absent)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def prediction_options(args: argparse.Namespace, **overrides: Any) -> PredictOptions:
    """:class:`PredictOptions` from parsed prediction flags (``overrides`` win)."""
    chroms = args.chroms
    if chroms is not None:
        chroms = [c for c in chroms if c is not None] or None
    return from_args(PredictOptions, args, chroms=chroms, peaks_only=not args.include_background,
                     progress=not args.quiet, **overrides)


def _check_choices(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.store and args.input_data:
        parser.error("give --store or --input-data, not both")
    if args.regions and args.tile:
        parser.error("give --regions or --tile, not both")


def run_prediction(model: str, output_dir: str, options: PredictOptions) -> int:
    """Run :func:`predict` and print the metrics table (peaks) and the summary line."""
    from bpnetz.predict.predict import predict

    summary = predict(model, output_dir, options)
    if summary.table:
        print(summary.table)
        print(f"baseline: {summary.baseline_source}")
    print(summary.format())
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "bpnetz predict") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_prediction_arguments(parser)
    args = parser.parse_args(argv)
    _check_choices(parser, args)
    return run_prediction(args.model, args.output_dir, prediction_options(args))


# ------------------------------------------------------------------------------------------ bpnet-predict


def _set_threads(threads: int) -> None:
    """TensorFlow's thread pools (effective only before TensorFlow starts running)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:
        pass


def _automated_dir(output_dir: str, time_zone: str | None) -> str:
    """``<output-dir>/<date_time>`` for ``--automate-filenames`` (in ``--time-zone`` when given)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        now = datetime.now(ZoneInfo(time_zone)) if time_zone else datetime.now()
    except ZoneInfoNotFoundError:
        raise InputError(f"--time-zone {time_zone!r} is not a known time zone.",
                         fix="Use an IANA name such as 'US/Pacific' or 'Europe/Berlin'.") from None
    return str(Path(output_dir) / now.strftime("%Y-%m-%d_%H_%M_%S"))


def bpnet_predict_main(argv: Sequence[str] | None = None, prog: str = "bpnet-predict") -> int:
    """``bpnet-predict`` with every reference flag; raises InputError (wrap with ``run_guarded``)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_prediction_arguments(parser, window_required=True)
    reference = parser.add_argument_group("reference flags")
    reference.add_argument("--sequence-generator-name", default="BPNet", help="accepted: BPNet")
    reference.add_argument("--input-seq-len", type=positive_int, default=2114, help="checked against the model (2114)")
    reference.add_argument("--output-len", type=positive_int, default=1000, help="checked against the model (1000)")
    reference.add_argument("--threads", type=positive_int, default=10, help="TensorFlow threads (10)")
    reference.add_argument("--automate-filenames", action="store_true",
                           help="write into a new <output-dir>/<date_time> directory")
    reference.add_argument("--time-zone", default=None, help="time zone of --automate-filenames")
    parser.set_defaults(split="all")  # the reference predicts every locus of --chroms (all with None)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    _check_choices(parser, args)
    if args.sequence_generator_name != "BPNet":
        print(f"notice: --sequence-generator-name {args.sequence_generator_name} ignored (the store loader is "
              "used).", file=sys.stderr)
    _set_threads(args.threads)
    output_dir = _automated_dir(args.output_dir, args.time_zone) if args.automate_filenames else args.output_dir
    options = prediction_options(args, expected_lengths=(args.input_seq_len, args.output_len))
    return run_prediction(args.model, output_dir, options)
