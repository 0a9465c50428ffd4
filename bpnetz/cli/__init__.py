"""The ``bpnetz`` command: a thin dispatcher to one module per subcommand.

Each subcommand lives in ``bpnetz/cli/<module>.py`` and exposes ``main(argv) -> int``. Modules are imported only
when their command runs, so ``bpnetz --help`` and light commands start without importing TensorFlow.

:func:`run_guarded` turns what the user can fix into one paragraph on stderr and exit status 2, never a
traceback: an :class:`~bpnetz.errors.InputError`; an OSError (anywhere in the exception's chain) of a full disk or
quota (ENOSPC, EDQUOT), a read-only file system (EROFS) or a permission error (EACCES, EPERM), named by the file
the exception carries. Writers that could crash instead of raising on a full disk (HDF5) write through
:func:`bpnetz.files.h5.h5_output`. The numeric-flag types below
make argparse reject a zero batch size or a negative jitter with its usual exit status 2, naming the flag.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

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
    "batch": ("batch", "run many experiments (a manifest) on dask.distributed, cached; status; atlas report"),
    "variants": ("variants", "predicted effects of variants (VCF/TSV): log-count change, profile JSD, per strand"),
    "ism": ("ism", "in-silico saturation mutagenesis of regions (h5 + bigWig scores)"),
    "syntax": ("syntax", "motif marginalization: one motif's effect, two motifs' spacing curve"),
}


def _bounded(convert: Callable[[str], float], what: str, ok: Callable[[float], bool]) -> Callable[[str], Any]:
    """An argparse ``type``: the converted value when ``ok``, else an error argparse prints naming the flag."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):  # NaN fails every bound
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


#: argparse types of numeric flags (batch sizes, epochs, lengths, jitter, rates, weights)
positive_int = _bounded(int, "a positive whole number", lambda v: v > 0)
non_negative_int = _bounded(int, "a whole number >= 0", lambda v: v >= 0)
positive_float = _bounded(float, "a number > 0", lambda v: 0 < v < float("inf"))
non_negative_float = _bounded(float, "a number >= 0", lambda v: 0 <= v < float("inf"))
fraction = _bounded(float, "a number > 0 and <= 1", lambda v: 0 < v <= 1)


def run_guarded(entry: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Run a command; turn :class:`InputError` into a one-paragraph message and exit status 2."""
    logging.getLogger("asyncio").addFilter(_drop_sibling_disk_failures)
    try:
        return int(entry(argv) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        failure = _disk_failure(err)
        if failure is None:
            raise
        print(f"error: {failure}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


#: errno -> (what happened, how to fix it) for write failures the user can fix
DISK_ERRORS = {
    errno.ENOSPC: ("cannot write: no space is left on the device",
                   "Free space there (df -h shows it) or choose an output location on a disk with room."),
    errno.EDQUOT: ("cannot write: the disk quota is exceeded",
                   "Free space within your quota or choose another output location."),
    errno.EROFS: ("cannot write: the location is on a read-only file system",
                  "Choose an output location on a writable disk."),
    errno.EACCES: ("permission denied", "Choose a location you may write to, or fix its permissions."),
    errno.EPERM: ("operation not permitted", "Choose a location you may write to, or fix its permissions."),
}


def _drop_sibling_disk_failures(record: logging.LogRecord) -> bool:
    """False for asyncio's "Task exception was never retrieved" report of a full-disk/read-only/permission error.

    zarr writes an array's objects as concurrent tasks; when the disk fills, one failure reaches us (and becomes
    the one-paragraph message) while its siblings fail the same way unobserved, and asyncio prints each, with a
    traceback, when the task is collected -- seen on CI as a traceback after our message. Other task failures
    stay visible.
    """
    exc = record.exc_info[1] if record.exc_info else None
    sibling = isinstance(exc, OSError) and exc.errno in DISK_ERRORS
    return not (sibling and record.getMessage().startswith("Task exception was never retrieved"))


def _disk_failure(err: BaseException) -> InputError | None:
    """An InputError for a full disk, a read-only location or a permission error anywhere in ``err``'s chain.

    The file is the OSError's filename; a write() names none (zarr's shard writes), so the innermost frame holding
    a path names it; TensorFlow's writers (TensorBoard events) raise errors whose text holds path and strerror.
    """
    by_text = {os.strerror(code): code for code in DISK_ERRORS}
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_ERRORS:
            return _disk_error(err.errno, err.filename if err.filename is not None else _path_in_frames(err))
        found = re.search(r"([^\s;'\"]+)[;:,]?\s+(" + "|".join(map(re.escape, by_text)) + ")", str(err))
        if found:
            return _disk_error(by_text[found.group(2)], found.group(1))
        err = err.__cause__ or err.__context__
    return None


def _disk_error(code: int, path: object | None) -> InputError:
    what, fix = DISK_ERRORS[code]
    return InputError(f"{what}.", path=path if path is not None else "(a file being written)", fix=fix)


def _path_in_frames(err: BaseException) -> str | None:
    """The innermost local of ``err``'s traceback named like a file (``path``, ``filepath``, an open ``fileobj``,
    …) that holds a file path."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name in ("path", "filename", "filepath", "tmp", "file", "fileobj"):
            value = frame.f_locals.get(name)
            value = getattr(value, "name", value) if name in ("file", "fileobj") else value
            if isinstance(value, (str, os.PathLike)) and os.sep in os.fspath(value):
                return os.fspath(value)
    return None


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
