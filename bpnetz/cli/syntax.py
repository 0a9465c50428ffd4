"""``bpnetz syntax``: motif marginalization: one motif's effect, or two motifs' spacing (cooperativity) curve.

``bpnetz syntax --model DIR --motif GATAAG [--motif motifs.meme:ap1] --regions peaks.bed --reference-genome
genome.fa --output-dir OUT [--n-backgrounds 64 --seed S --max-spacing 150]``: motifs are ACGT text,
``FILE.meme[:NAME]`` or ``modisco_results.h5[:PATTERN]``; see :mod:`bpnetz.insilico.syntax`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.cli.variants import DEFAULT_SEED, add_model_arguments, open_model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bpnetz syntax", description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--motif", action="append", required=True,
                        help="motif to insert (once: marginal effect; twice: spacing curve of the second "
                             "relative to the first)")
    parser.add_argument("--regions", "-r", required=True,
                        help="BED/narrowPeak whose input windows are dinucleotide-shuffled into backgrounds")
    parser.add_argument("--reference-genome", "-g", required=True, help="FASTA of the genome")
    parser.add_argument("--n-backgrounds", type=int, default=64, help="shuffled backgrounds (64)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the shuffles ({DEFAULT_SEED})")
    parser.add_argument("--max-spacing", type=int, default=150, help="largest centre-to-centre spacing (150)")
    parser.add_argument("--task-id", "-t", type=int, default=0, help="task of the plots and the printed peak (0)")
    args = parser.parse_args(argv)
    from bpnetz.insilico.session import writing_to
    from bpnetz.insilico.syntax import run_syntax

    session = open_model(args)
    try:
        with writing_to(args.output_dir):
            summary = run_syntax(session, args.motif, args.regions, args.reference_genome, args.output_dir,
                                 n_backgrounds=args.n_backgrounds, seed=args.seed, max_spacing=args.max_spacing,
                                 task=args.task_id)
    finally:
        session.close()
    print(summary.format())
    return 0
