"""``bpnetz build``: materialise every locus of an experiment into a Zarr store (see bpnetz.build.builder)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.build.options import BuildOptions
from bpnetz.cli import non_negative_int, positive_int
from bpnetz.cli.options import from_args

DEFAULTS = BuildOptions()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnetz build",
        description="Read the FASTA, bigWigs and peak/background files of input_data.json once and write every "
                    "locus (sequence, signal and bias windows, coordinates, checksums) into a sharded Zarr store. "
                    "An interrupted build resumes when the same command is rerun.")
    parser.add_argument("--input-data", required=True, help="input_data.json (tasks, bigWigs, loci)")
    parser.add_argument("--reference-genome", required=True, help="genome FASTA (indexed on first use)")
    parser.add_argument("--chrom-sizes", required=True, help="chrom.sizes of the genome")
    parser.add_argument("--input-seq-len", dest="input_len", type=positive_int, default=DEFAULTS.input_len,
                        help="model input length (default %(default)s)")
    parser.add_argument("--output-len", dest="output_len", type=positive_int, default=DEFAULTS.output_len,
                        help="model output length (default %(default)s)")
    parser.add_argument("--max-jitter", type=non_negative_int, default=DEFAULTS.max_jitter,
                        help="largest jitter to store room for (%(default)s)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", help="store path or URL, e.g. store.zarr or s3://bucket/lab/store.zarr")
    target.add_argument("--catalog", default=None,
                        help="directory or URL holding stores named by their content (build key): reuse the store "
                             "of these inputs when there is one, else build it there; prints the store used")
    parser.add_argument("--chroms", nargs="+", default=None, help="keep only loci on these chromosomes")
    parser.add_argument("--blacklist", default=None, help="BED of regions; loci whose windows overlap are rejected")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="local worker processes (default: all cores)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a dask.distributed scheduler (e.g. tcp://host:8786) instead of local "
                             "processes; the store path must be reachable from the workers")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing bpnetz store (never another directory): the new store is swapped "
                             "in by renames once complete")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.catalog is not None and args.overwrite:
        parser.error("--overwrite does not apply to --catalog: a store in a catalog is never replaced")
    from bpnetz.build.builder import build_store, find_or_build_store

    options = from_args(BuildOptions, args, progress=not args.quiet)
    if args.catalog is None:
        build_store(args.input_data, args.reference_genome, args.chrom_sizes, args.output, options)
        return 0
    print(find_or_build_store(args.catalog, args.input_data, args.reference_genome, args.chrom_sizes, options))
    return 0
