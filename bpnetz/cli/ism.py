"""``bpnetz ism``: in-silico saturation mutagenesis of regions (every base to the other three).

``bpnetz ism --model DIR --regions regions.bed --reference-genome genome.fa --output-dir OUT [--width 200]``
writes ism.h5 (raw and mean-centred scores), ism_counts.bw / ism_profile.bw (per-base scores) and skipped.tsv;
see :mod:`bpnetz.insilico.ism`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.cli.variants import add_model_arguments, open_model


def main(argv: Sequence[str] | None = None) -> int:
    from bpnetz.insilico.ism import DEFAULT_WIDTH

    parser = argparse.ArgumentParser(prog="bpnetz ism", description=__doc__.splitlines()[0])
    add_model_arguments(parser, rc_default=False)
    parser.add_argument("--regions", "-r", required=True, help="BED/narrowPeak: windows centred on summit/midpoint")
    parser.add_argument("--reference-genome", "-g", required=True, help="FASTA of the genome")
    parser.add_argument("--chrom-sizes", "-s", help="chromosome sizes for the bigWigs (default: the FASTA's)")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                        help=f"bases mutated per region, centred (default {DEFAULT_WIDTH})")
    parser.add_argument("--task-id", "-t", type=int, default=0, help="task whose outputs are scored (0)")
    args = parser.parse_args(argv)
    from bpnetz.insilico.ism import run_ism
    from bpnetz.insilico.session import writing_to

    session = open_model(args)
    try:
        with writing_to(args.output_dir):
            summary = run_ism(session, args.regions, args.reference_genome, args.output_dir, width=args.width,
                              task=args.task_id, chrom_sizes=args.chrom_sizes)
    finally:
        session.close()
    print(summary.format())
    return 0
