"""The reference tool's ``bpnet-*`` console scripts, built on the bpnetz library.

Each accepts the reference's flags and defaults (see the README's compatibility table) so existing scripts run
unchanged; flags the reference accepted but ignored are accepted and ignored with a one-line notice.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from bpnetz.cli import run_guarded


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
