"""``bpnetz outliers`` (and ``bpnet-outliers``): remove outlier peaks of one task by the quantile rule.

Accepts exactly the reference's flags and defaults; ``--chroms`` is optional here (default: every chromosome of
the chrom sizes file).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.preprocess.outliers import LOG_NAME, remove_outliers

DESCRIPTION = f"""\
For each peak of the task, total = the sum of the task's signal bigWigs over summit ± sequence_len/2. Peaks
whose total exceeds (the total nearest the --quantile quantile) × --quantile-value-scale-factor are removed,
as are peaks on other chromosomes than --chroms, peaks whose window crosses a chromosome end, duplicate rows
and (with --blacklist) peaks whose window overlaps a blacklist region. The kept peaks are written sorted by
position with all their columns; {LOG_NAME} (every removed peak and why) goes next to --output-bed.
"""


def build_parser(prog: str = "bpnetz outliers") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--input-data", "-i", required=True, help="input_data.json")
    parser.add_argument("--quantile", "-q", type=float, default=0.99, help="quantile of the totals (0.99)")
    parser.add_argument("--quantile-value-scale-factor", "-s", type=float, default=1.2,
                        help="factor applied to the total at the quantile to get the threshold (1.2)")
    parser.add_argument("--task", "-t", type=str, default="0", help="task key in --input-data (\"0\")")
    parser.add_argument("--chrom-sizes", "-c", required=True, help="chrom.sizes of the genome")
    parser.add_argument("--chroms", nargs="+", help="chromosomes to keep (default: all in --chrom-sizes)")
    parser.add_argument("--sequence-len", type=int, default=1000,
                        help="window around the summit over which counts are summed (1000)")
    parser.add_argument("--blacklist", help="BED of regions; peaks whose window overlaps one are removed")
    parser.add_argument("--output-bed", required=True, help="narrowPeak of the kept peaks")
    parser.add_argument("--global-sample-weight", type=float,
                        help="write this value in column 5 (score, the reference's sample weight) of every peak")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "bpnetz outliers") -> int:
    args = build_parser(prog).parse_args(argv)
    result = remove_outliers(args.input_data, args.output_bed, args.chrom_sizes, task=args.task,
                             chroms=args.chroms, sequence_len=args.sequence_len, quantile=args.quantile,
                             scale_factor=args.quantile_value_scale_factor, blacklist=args.blacklist,
                             global_sample_weight=args.global_sample_weight)
    print(result.summary())
    return 0
