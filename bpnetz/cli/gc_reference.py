"""``bpnetz gc-reference`` (and ``bpnet-gc-reference``): GC fraction of genome-wide windows -> <prefix>.bed."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.preprocess.gc import DEFAULT_MAX_N_FRACTION, gc_reference

DESCRIPTION = """\
Write <output_prefix>.bed with chrom, start, end and GC fraction of windows [k*stride, k*stride + inputlen)
lying inside each chromosome. GC fraction = (G+C)/(A+C+G+T); windows with more than --max-n-fraction N are
skipped. Use it as -rgb/--ref_gc_bed of gc-background (windows of 2 x flank_size, e.g. 2114).
"""


def build_parser(prog: str = "bpnetz gc-reference") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("-g", "--ref_fasta", required=True, help="reference genome FASTA")
    parser.add_argument("-c", "--chrom_sizes",
                        help="chrom.sizes: chromosomes to cover (default: every sequence of the FASTA)")
    parser.add_argument("-o", "--output_prefix", required=True, help="writes <output_prefix>.bed")
    parser.add_argument("-f", "--inputlen", type=int, default=2114, help="window length (2114)")
    parser.add_argument("-s", "--stride", type=int, default=50, help="distance between window starts (50)")
    parser.add_argument("--max-n-fraction", type=float, default=DEFAULT_MAX_N_FRACTION,
                        help=f"skip windows with a larger fraction of N ({DEFAULT_MAX_N_FRACTION})")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "bpnetz gc-reference") -> int:
    args = build_parser(prog).parse_args(argv)
    _, summary = gc_reference(args.ref_fasta, args.output_prefix, chrom_sizes=args.chrom_sizes,
                              inputlen=args.inputlen, stride=args.stride, max_n_fraction=args.max_n_fraction)
    print(summary)
    return 0
