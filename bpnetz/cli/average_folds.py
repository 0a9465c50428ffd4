"""``bpnetz average-folds``: average the predictions or the contribution scores of one experiment's fold models."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

DESCRIPTION = """\
Average the files that the fold models of one experiment (<name>_split000, _split001, ...) wrote: prediction
files (<model>_predictions.h5 of 'bpnetz predict') or score files (counts_scores.h5 or profile_scores.h5 of
'bpnetz shap'). Loci are matched by chromosome, start and end, in any order; the output follows the first file's
order and has the same layout as the inputs (so bigWigs and modisco run on it).

Predictions are averaged in log space, as an ensemble averages its models' outputs: pred_logcounts is the mean of
the folds' log counts; each track's predicted profile is the geometric mean of the folds' profile probabilities
renormalised (the softmax of the averaged logits) times the geometric mean of the folds' totals. true_* are
copied after checking that all files agree. Scores: hyp_scores is the mean of the folds' hypothetical
contributions, after checking that input_seqs agree.
"""


def build_parser(prog: str = "bpnetz average-folds") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--predictions", nargs="+", metavar="H5", help="the folds' <model>_predictions.h5 files")
    kind.add_argument("--scores", nargs="+", metavar="H5",
                      help="the folds' counts_scores.h5 (or profile_scores.h5) files")
    parser.add_argument("--output", "-o", required=True, help="the averaged h5 (written atomically)")
    parser.add_argument("--intersect", action="store_true",
                        help="keep only the loci found in every file (default: differing loci are an error)")
    parser.add_argument("--chrom-sizes", "-s", help="chrom.sizes of the genome (with --bigwig)")
    parser.add_argument("--bigwig", help="bigWig of the average: for predictions one per track, named "
                                         "OUT_track_0.bw, ... (or put {i} in the path); for scores the projected "
                                         "contributions")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "bpnetz average-folds") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if (args.chrom_sizes is None) != (args.bigwig is None):
        parser.error("--chrom-sizes and --bigwig go together")
    from bpnetz.ensemble.average import average_predictions, average_scores

    average = average_predictions if args.predictions else average_scores
    summary = average(args.predictions or args.scores, args.output, intersect=args.intersect,
                      chrom_sizes=args.chrom_sizes, bigwig=args.bigwig, progress=not args.quiet)
    print(summary.format())
    return 0
