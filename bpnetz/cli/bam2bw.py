"""``bpnetz bam2bw``: aligned reads -> 5'-end count bigWigs (stranded for ChIP-nexus/-exo, or unstranded)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.preprocess.bam2bw import FORMATS, reads_to_bigwigs

DESCRIPTION = """\
Count the 5' ends of aligned reads per base and write bigWigs: <prefix>.plus.bw and <prefix>.minus.bw
(default, ChIP-nexus/-exo; minus-strand counts are positive) or <prefix>.bw with --unstranded (ChIP-seq).
Several inputs (replicates) are summed. Use the same command for control BAMs.

5' end: reference_start for + reads, reference_end - 1 for - reads; soft-clipped bases are excluded.
Skipped: unmapped, secondary, supplementary and QC-failed alignments, and mate 2 of pairs (paired-end data
counts read 1 only). Duplicates are removed by default: reads flagged 0x400 are dropped and reads with the
same chromosome, strand and 5' position count once (per input file). Chromosome sizes come from the BAM header,
or from --chrom-sizes (required for tagAlign/fragments BED; reads on chromosomes it does not list are skipped).
"""


def build_parser(prog: str = "bpnetz bam2bw") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="READS",
                        help="BAM/SAM/CRAM (indexed or not), tagAlign BED(.gz) or fragments BED(.gz)")
    parser.add_argument("--output-prefix", "-o", required=True,
                        help="writes <prefix>.plus.bw and <prefix>.minus.bw, or <prefix>.bw with --unstranded")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="input format (default: from the suffix, else from the first record)")
    parser.add_argument("--chrom-sizes", "-c", help="chrom.sizes (default: the BAM header)")
    parser.add_argument("--shift", type=int, default=0,
                        help="move 5' ends along their strand: + ends right, - ends left (default 0)")
    parser.add_argument("--unstranded", action="store_true", help="one bigWig with both strands summed")
    parser.add_argument("--min-mapq", type=int, default=0,
                        help="skip alignments with a lower MAPQ (default 0: no filter; 30 for raw alignments)")
    parser.add_argument("--keep-duplicates", action="store_true",
                        help="count flagged and positional duplicates (default: remove them)")
    parser.add_argument("--threads", type=int, default=1, help="BAM decompression threads (default 1)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "bpnetz bam2bw") -> int:
    args = build_parser(prog).parse_args(argv)
    result = reads_to_bigwigs(args.inputs, args.output_prefix, input_format=args.format,
                              chrom_sizes=args.chrom_sizes, shift=args.shift, unstranded=args.unstranded,
                              min_mapq=args.min_mapq, keep_duplicates=args.keep_duplicates, threads=args.threads)
    print(result.summary())
    return 0
