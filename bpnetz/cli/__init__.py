"""The ``bpnetz`` command: a thin dispatcher to one module per subcommand.

Each subcommand lives in ``bpnetz/cli/<module>.py`` and exposes ``main(argv) -> int``. Modules are imported only
when their command runs, so ``bpnetz --help`` and light commands start without importing TensorFlow.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

from bpnetz.errors import InputError

# TensorFlow's C++ start-up chatter (CPU feature notes, missing CUDA) buries the progress bars; warnings stay.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# command name -> (module under bpnetz.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "simulate -> build -> train -> predict -> shap -> modisco on a built-in experiment"),
    "simulate": ("simulate", "write a synthetic experiment (genome, bigWigs, peaks, JSON files, ground truth)"),
    "build": ("build", "materialise all loci of an experiment into a Zarr store"),
    "store": ("store", "inspect (info) or check (verify) a store"),
    "train": ("train", "train BPNet models from a store, one per split"),
    "predict": ("predict", "predict profiles and counts, compute metrics, write bigWigs"),
    "shap": ("shap", "DeepLIFT-SHAP contribution scores"),
    "modisco": ("modisco", "motif discovery with tfmodisco-lite on contribution scores"),
    "hits": ("hits", "call motif hits with FiNeMo"),
    "counts-loss-weight": ("counts_loss_weight", "suggest the counts loss weight"),
    "bam2bw": ("bam2bw", "BAM / fragments / tagAlign -> 5'-end count bigWigs"),
    "outliers": ("outliers", "remove outlier peaks by the quantile rule"),
    "gc-reference": ("gc_reference", "GC content of genome-wide windows"),
    "gc-background": ("gc_background", "GC-matched background loci"),
    "average-folds": ("average_folds", "average predictions or contribution scores across split models"),
    "variants": ("variants", "predicted effects of variants (VCF/TSV): log-count change, profile JSD, per strand"),
    "ism": ("ism", "in-silico saturation mutagenesis of regions (h5 + bigWig scores)"),
    "syntax": ("syntax", "motif marginalization: one motif's effect, two motifs' spacing curve"),
}


def run_guarded(entry: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Run a command; turn :class:`InputError` into a one-paragraph message and exit status 2."""
    try:
        return int(entry(argv) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        failure = _batch_failure(err)
        if failure is None:
            raise
        print(f"error: {failure}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _batch_failure(err: Exception) -> InputError | None:
    """The InputError behind a TensorFlow error raised while a loader produced batches (else None)."""
    if "tensorflow" not in sys.modules or not isinstance(err, sys.modules["tensorflow"].errors.OpError):
        return None
    from bpnetz.store.loader import batch_failure

    failure = batch_failure()
    return failure if failure is not None and str(failure) in str(err) else None


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: bpnetz <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'bpnetz <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bpnetz`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from bpnetz import __version__

        print(f"bpnetz {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"error: unknown command {args[0]!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bpnetz.cli.{COMMANDS[args[0]][0]}")
    return run_guarded(module.main, args[1:])


if __name__ == "__main__":
    sys.exit(main())
