"""``bpnetz shap`` and ``bpnet-shap``: DeepLIFT-SHAP contribution scores of a trained model.

``bpnetz shap --model DIR (--store store.zarr | --bed-file peaks.bed --reference-genome genome.fa) --output-dir OUT``
writes ``counts_scores.h5`` and ``profile_scores.h5`` (the input of ``modisco motifs --h5py`` and ``bpnetz
modisco``), the scored loci as BED and, with ``--generate-shap-bigWigs``, the projected scores as bigWigs.
``bpnet-shap`` accepts every flag of the reference tool (``--output-directory`` and ``--output-dir`` both work).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bpnetz.cli import non_negative_int, positive_int
from bpnetz.cli.options import from_args
from bpnetz.shap.contributions import contribution_scores
from bpnetz.shap.options import ShapOptions

DEFAULTS = ShapOptions()

IGNORED = ("gen_null_dist", "control_len", "control_smoothing", "automate_filenames", "time_zone")


def add_shap_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``bpnetz shap`` and ``bpnet-shap`` (the reference's names, short and long)."""
    parser.add_argument("--model", "-m", required=True, help="model directory written by 'bpnetz train'")
    parser.add_argument("--store", help="score peaks of this store (default: the model's training store)")
    parser.add_argument("--bed-file", "-b", help="narrowPeak/BED of loci to score (summit-centred windows)")
    parser.add_argument("--reference-genome", "-g", help="FASTA for --bed-file")
    parser.add_argument("--input-data", help="input_data.json: the control bigWigs for --bed-file")
    parser.add_argument("--output-dir", "--output-directory", "-o", dest="output_dir", required=True,
                        help="output directory")
    parser.add_argument("--chroms", nargs="+", help="only loci on these chromosomes")
    parser.add_argument("--task-id", "-t", dest="task", type=non_negative_int, default=DEFAULTS.task,
                        help="task to explain (%(default)s)")
    parser.add_argument("--sample", type=positive_int, help="score a seeded random sample of this many loci")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of shuffles and sample (%(default)s)")
    parser.add_argument("--presort-bed-file", dest="presort", action="store_true",
                        help="score the strongest loci (narrowPeak column 7) first")
    parser.add_argument("--num-shuffles", type=positive_int, default=DEFAULTS.num_shuffles,
                        help="dinucleotide-shuffled references (%(default)s)")
    parser.add_argument("--generate-shap-bigWigs", action="store_true", dest="generate_bigwigs",
                        help="also write the projected scores as bigWigs (needs --chrom-sizes)")
    parser.add_argument("--chrom-sizes", "-s", help="chromosome sizes, for the bigWigs")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size,
                        help="sequences per DeepLIFT step (%(default)s)")
    parser.add_argument("--input-seq-len", dest="expected_input_len", type=positive_int,
                        help="checked against the model's input length")
    parser.add_argument("--orig-multi-loss", action="store_true", help="accepted; read from the model itself")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_ignored_reference_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the reference's bpnet-shap that change nothing here (a notice says so when used)."""
    parser.add_argument("--gen-null-dist", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--control-len", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--control-smoothing", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--automate-filenames", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--time-zone", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    for name in IGNORED:
        if getattr(args, name, None) not in (None, False):
            print(f"note: --{name.replace('_', '-')} is accepted for compatibility and ignored "
                  "(control length and smoothing come from the model's training store).", file=sys.stderr)
    summary = contribution_scores(args.model, args.output_dir,
                                  from_args(ShapOptions, args, progress=not args.quiet))
    print(summary.format())
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "bpnetz shap") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_shap_arguments(parser)
    if prog != "bpnetz shap":
        add_ignored_reference_arguments(parser)
    return run(parser.parse_args(argv))
