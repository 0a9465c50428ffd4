"""``bpnetz counts-loss-weight`` (and ``bpnet-counts-loss-weight``): print the suggested counts loss weight.

Accepts the reference's flags and defaults, plus ``--store`` to compute it from a built store without reading
the bigWigs again. Prints only the number on stdout, so ``$(bpnetz counts-loss-weight ...)`` captures it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.config import InputData
from bpnetz.preprocess.counts_loss_weight import (
    counts_loss_weight_from_bigwigs,
    counts_loss_weight_from_store,
)

DESCRIPTION = """\
Suggested counts loss weight (loss_weights[1] of bpnet_params.json): alpha × the mean over peaks and signal
tracks of the track's total counts in summit ± peak_width/2 (halved with --orig-multi-loss). From
input_data.json (its peaks and signal bigWigs) or from a store (its peak loci). Prints --default when there
are no peaks.
"""


def build_parser(prog: str = "bpnetz counts-loss-weight") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input-data", "-i", help="input_data.json (peaks + signal bigWigs)")
    source.add_argument("--store", help="a store built by 'bpnetz build'")
    parser.add_argument("--peak-width", type=int, default=1000,
                        help="window around each summit over which counts are summed (1000)")
    parser.add_argument("--alpha", "-a", type=float, default=1.0,
                        help="scale; below 1 favours the profile loss (1.0)")
    parser.add_argument("--default", "-d", type=float, default=100.0,
                        help="weight printed when there are no peaks (100)")
    parser.add_argument("--orig-multi-loss", action="store_true",
                        help="one multinomial per strand: the weight is halved")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "bpnetz counts-loss-weight") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.peak_width <= 0:
        parser.error("--peak-width must be positive")
    if args.store:
        weight = counts_loss_weight_from_store(args.store, args.alpha, args.peak_width,
                                               orig_multi_loss=args.orig_multi_loss, default=args.default)
    else:
        weight = counts_loss_weight_from_bigwigs(InputData.load(args.input_data), args.peak_width, args.alpha,
                                                 args.default, orig_multi_loss=args.orig_multi_loss)
    print(float(weight))
    return 0
