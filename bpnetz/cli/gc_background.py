"""``bpnetz gc-background`` (and ``bpnet-gc-background``): GC-matched negatives for a peak set."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bpnetz.preprocess.gc import DEFAULT_MAX_N_FRACTION, DEFAULT_SEED, gc_background

DESCRIPTION = """\
Draw reference GC windows that overlap no peak (neither its interval nor summit ± flank_size) so that, per
chromosome, their GC histogram (0.01 bins) matches the peaks' (GC of summit ± flank_size), neg_to_pos_ratio_train
negatives per peak; short bins borrow from the nearest bins. Writes in --out_dir: <output_prefix>.bed
(10-column narrowPeak-like, summit offset = window centre; use it as background_loci),
<output_prefix>_compared_with_foreground.png, and the foreground and candidate GC BEDs. Without -rgb the GC reference is
computed from the FASTA on the fly.
"""


def build_parser(prog: str = "bpnetz gc-background") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("-d", "--out_dir", required=True, help="output directory")
    parser.add_argument("-i", "--peaks_bed", required=True, help="peaks (narrowPeak with summit column)")
    parser.add_argument("-g", "--ref_fasta", required=True, help="reference genome FASTA")
    parser.add_argument("-rgb", "--ref_gc_bed",
                        help="GC reference from gc-reference (default: computed from the FASTA)")
    parser.add_argument("-fl", "--flank_size", type=int, default=1057,
                        help="half-width of the window around each summit (1057)")
    parser.add_argument("-f", "--foreground_gc_bed", default="foreground.gc.bed",
                        help="name of the peaks' GC BED written in --out_dir (foreground.gc.bed)")
    parser.add_argument("-c", "--candidate_negatives", default="candidate.negatives.bed",
                        help="name of the candidate negatives' GC BED written in --out_dir (candidate.negatives.bed)")
    parser.add_argument("-npr", "--neg_to_pos_ratio_train", type=int, default=1,
                        help="negatives per peak (1)")
    parser.add_argument("-o", "--output_prefix", default="negatives",
                        help="writes <out_dir>/<output_prefix>.bed and its PNG (negatives)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed ({DEFAULT_SEED})")
    parser.add_argument("--stride", type=int, default=50,
                        help="window stride of the on-the-fly GC reference, without -rgb (50)")
    parser.add_argument("--max-n-fraction", type=float, default=DEFAULT_MAX_N_FRACTION,
                        help=f"on-the-fly GC reference: skip windows with more N ({DEFAULT_MAX_N_FRACTION})")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "bpnetz gc-background") -> int:
    args = build_parser(prog).parse_args(argv)
    result = gc_background(args.peaks_bed, args.ref_fasta, args.out_dir, ref_gc_bed=args.ref_gc_bed,
                           flank_size=args.flank_size, neg_to_pos_ratio=args.neg_to_pos_ratio_train,
                           output_prefix=args.output_prefix, foreground_gc_bed=args.foreground_gc_bed,
                           candidate_negatives_bed=args.candidate_negatives, seed=args.seed, stride=args.stride,
                           max_n_fraction=args.max_n_fraction)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(result.summary())
    return 0
