"""``bpnetz build``: materialise every locus of an experiment into a Zarr store (see bpnetz.build.builder)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnetz build",
        description="Read the FASTA, bigWigs and peak/background files of input_data.json once and write every "
                    "locus (sequence, signal and bias windows, coordinates, checksums) into a sharded Zarr store. "
                    "An interrupted build resumes when the same command is rerun.")
    parser.add_argument("--input-data", required=True, help="input_data.json (tasks, bigWigs, loci)")
    parser.add_argument("--reference-genome", required=True, help="genome FASTA (indexed on first use)")
    parser.add_argument("--chrom-sizes", required=True, help="chrom.sizes of the genome")
    parser.add_argument("--input-seq-len", type=int, default=2114, help="model input length (default 2114)")
    parser.add_argument("--output-len", type=int, default=1000, help="model output length (default 1000)")
    parser.add_argument("--max-jitter", type=int, default=128, help="largest jitter to store room for (128)")
    parser.add_argument("--output", required=True, help="store path, e.g. store.zarr")
    parser.add_argument("--chroms", nargs="+", default=None, help="keep only loci on these chromosomes")
    parser.add_argument("--blacklist", default=None, help="BED of regions; loci whose windows overlap are rejected")
    parser.add_argument("--workers", type=int, default=None, help="local threads (default: all cores)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a dask.distributed scheduler (e.g. tcp://host:8786) instead of local "
                             "threads; the store path must be reachable from the workers")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing bpnetz store (never another directory): the new store is swapped "
                             "in by renames once complete")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from bpnetz.build.builder import build_store

    build_store(args.input_data, args.reference_genome, args.chrom_sizes, input_len=args.input_seq_len,
                output_len=args.output_len, max_jitter=args.max_jitter, output=args.output, chroms=args.chroms,
                blacklist=args.blacklist, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet,
                overwrite=args.overwrite)
    return 0
