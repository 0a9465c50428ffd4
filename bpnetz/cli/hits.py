"""`bpnetz hits`: call motif hits of tfmodisco-lite patterns on every scored locus with FiNeMo."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnetz hits",
        description="Map the patterns of a tfmodisco-lite results file onto every locus of a score file with "
                    "FiNeMo (optional extra: pip install 'bpnetz[hits]'). Writes FiNeMo's hits.tsv, "
                    "hits_unique.tsv, hits.bed, peaks_qc.tsv, motif_data.tsv and summary.json.")
    parser.add_argument("--modisco", required=True, help="modisco_results.h5 from `bpnetz modisco`")
    parser.add_argument("--scores", required=True, help="score file with hyp_scores and input_seqs (N, L, 4)")
    parser.add_argument("--scores-key", default="hyp_scores",
                        help="dataset of hypothetical contributions in the score file (default: hyp_scores)")
    parser.add_argument("--output-dir", required=True, help="directory for the results (created if missing)")
    parser.add_argument("--peaks", help="BED/narrowPeak of the scored loci in score-file order, to place and name "
                                        "regions (default: the score file's coordinates)")
    parser.add_argument("--lambda", "--alpha", dest="lambda_", metavar="LAMBDA", type=float, default=0.7,
                        help="FiNeMo's L1 penalty and minimum hit correlation (default: 0.7)")
    parser.add_argument("--window", type=int, default=1000,
                        help="central bases of each locus searched, clipped to its length (default: 1000)")
    parser.add_argument("--mode", choices=("pp", "ph", "hp", "hh"), default="pp",
                        help="contribution types of motifs and scores: p projected, h hypothetical (default: pp)")
    parser.add_argument("--trim-threshold", type=float, default=0.3,
                        help="trim motif flanks below this fraction of the peak CWM column (default: 0.3)")
    parser.add_argument("--batch-size", type=int, default=2000, help="regions per optimiser batch (default: 2000)")
    parser.add_argument("--max-steps", type=int, default=10000, help="optimiser steps per region (default: 10000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bpnetz.motifs.hits import call_hits

    summary = call_hits(args.modisco, args.scores, args.output_dir, scores_key=args.scores_key, peaks=args.peaks,
                        window=args.window, lambda_=args.lambda_, mode=args.mode,
                        trim_threshold=args.trim_threshold, batch_size=args.batch_size, max_steps=args.max_steps)
    print(summary.format())
    return 0
