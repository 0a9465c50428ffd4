"""`bpnetz modisco`: motif discovery with tfmodisco-lite on a contribution-score file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.cli import non_negative_int, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnetz modisco",
        description="Run tfmodisco-lite on a score file (counts_scores.h5 or profile_scores.h5 from `bpnetz shap`) "
                    "and write modisco_results.h5, motif logos, patterns.meme, seqlets.bed, report.html and "
                    "summary.json into the output directory.")
    parser.add_argument("--scores", required=True, help="score file with hyp_scores and input_seqs (N, L, 4)")
    parser.add_argument("--scores-key", default="hyp_scores",
                        help="dataset of hypothetical contributions in the score file (default: hyp_scores)")
    parser.add_argument("--output-dir", required=True, help="directory for the results (created if missing)")
    parser.add_argument("--max-seqlets", type=positive_int, default=2000,
                        help="maximum seqlets per metacluster (default: 2000)")
    parser.add_argument("--window", type=positive_int, default=400,
                        help="central bases of each locus to search, clipped to its length (default: 400)")
    parser.add_argument("--motif-db", help="MEME-format motif database; the report lists TOMTOM matches")
    parser.add_argument("--n-matches", type=positive_int, default=3,
                        help="TOMTOM matches listed per pattern (default: 3)")
    parser.add_argument("--n-leiden-runs", type=positive_int, default=2,
                        help="Leiden clusterings with different seeds (default: 2, as `modisco motifs`)")
    parser.add_argument("--sliding-window", type=positive_int, default=20, help="seqlet core size (default: 20)")
    parser.add_argument("--seqlet-flank", type=non_negative_int, default=5,
                        help="flank added to each seqlet (default: 5)")
    parser.add_argument("--trim-size", type=positive_int, default=30, help="pattern trim size (default: 30)")
    parser.add_argument("--initial-flank", type=non_negative_int, default=10,
                        help="flank added to each pattern initially (default: 10)")
    parser.add_argument("--final-flank", type=non_negative_int, default=0,
                        help="flank added to each pattern at the end (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bpnetz.motifs.modisco import run_modisco

    summary = run_modisco(
        args.scores, args.output_dir, scores_key=args.scores_key, max_seqlets=args.max_seqlets,
        window=args.window, n_leiden_runs=args.n_leiden_runs, sliding_window=args.sliding_window,
        seqlet_flank=args.seqlet_flank, trim_size=args.trim_size, initial_flank=args.initial_flank,
        final_flank=args.final_flank, motif_db=args.motif_db, n_matches=args.n_matches)
    print(summary.format())
    return 0
