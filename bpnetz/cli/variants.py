"""``bpnetz variants``: predicted effects of variants (VCF/TSV) of a trained model, ref vs alt.

``bpnetz variants --model DIR --variants FILE.vcf[.gz]|FILE.tsv --reference-genome genome.fa --output-dir OUT``
writes variants.tsv (every allele, scored or with the reason it was not), variants.h5 and PNGs of the top
variants; see :mod:`bpnetz.insilico.variants`. The model options here are shared by ``ism`` and ``syntax``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

DEFAULT_SEED = 20210304


def add_model_arguments(parser: argparse.ArgumentParser, rc_default: bool = True) -> None:
    """--model and how it is run: controls, reverse-complement averaging, batch size."""
    parser.add_argument("--model", "-m", required=True, help="model directory written by 'bpnetz train'")
    parser.add_argument("--input-data", help="input_data.json naming the control bigWigs (default: the paths "
                                             "recorded when the model's store was built)")
    parser.add_argument("--zero-controls", action="store_true", help="predict with zero bias (control) inputs")
    if rc_default:
        parser.add_argument("--no-reverse-complement-average", dest="rc_average", action="store_false",
                            help="predict the forward strand only (default: average with the reverse complement)")
    else:
        parser.add_argument("--reverse-complement-average", dest="rc_average", action="store_true",
                            help="average predictions with the reverse complement's (default: forward only)")
    parser.add_argument("--batch-size", type=int, default=128, help="sequences per model call (128)")
    parser.add_argument("--output-dir", "-o", required=True, help="output directory")


def open_model(args: argparse.Namespace):
    from bpnetz.errors import InputError
    from bpnetz.insilico.session import open_session

    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size} must be at least 1.")
    return open_session(args.model, input_data=args.input_data, zero_controls=args.zero_controls,
                        rc_average=args.rc_average, batch_size=args.batch_size)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bpnetz variants", description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--variants", "-v", required=True, help="VCF (.vcf, .vcf.gz) or TSV with chrom pos ref alt")
    parser.add_argument("--reference-genome", "-g", required=True, help="FASTA of the genome")
    parser.add_argument("--chrom-sizes", "-s", help="only chromosomes listed here are scored (others: unknown_chrom)")
    parser.add_argument("--task-id", "-t", type=int, default=0, help="task of the DeepLIFT-SHAP scores (0)")
    parser.add_argument("--shap-top", type=int, default=0,
                        help="DeepLIFT-SHAP counts contributions of both alleles of this many top variants (0)")
    parser.add_argument("--plot-top", type=int, default=5, help="PNGs of this many top variants (5)")
    parser.add_argument("--num-shuffles", type=int, default=20, help="DeepLIFT-SHAP references (20)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"DeepLIFT-SHAP seed ({DEFAULT_SEED})")
    args = parser.parse_args(argv)
    from bpnetz.insilico.session import writing_to
    from bpnetz.insilico.variants import run_variants

    session = open_model(args)
    try:
        with writing_to(args.output_dir):
            summary = run_variants(session, args.variants, args.reference_genome, args.output_dir,
                                   chrom_sizes=args.chrom_sizes, shap_top=args.shap_top, plot_top=args.plot_top,
                                   task=args.task_id, num_shuffles=args.num_shuffles, seed=args.seed)
    finally:
        session.close()
    print(summary.format())
    return 0
