"""``bpnetz store info PATH``, ``bpnetz store verify PATH`` (see bpnetz.store.inspect) and ``bpnetz store list
ROOT`` (see bpnetz.store.catalog). PATH and ROOT may be local paths or URLs (s3://, gs://, http(s)://).

``verify`` exits 0 when the store is as recorded, 1 when it found problems (listed on stderr, one line each, every
damaged shard named by its file) and 2 when it could not run (not a store, unreadable metadata: one paragraph).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bpnetz.store.inspect import SAMPLE_ROWS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bpnetz store", description="Inspect or check a store.")
    commands = parser.add_subparsers(dest="action", required=True, metavar="{info,verify,list}")
    info = commands.add_parser("info", help="print what the build recorded (reads no array)")
    info.add_argument("path", help="store path or URL")
    info.add_argument("--json", action="store_true", help="print the metadata as JSON")
    verify = commands.add_parser(
        "verify", help="read and check every chunk, totals, ids, sources and a sample of rows; exit 1 on problems",
        description="Read and check every shard of every array (chunk CRC32C checksums, missing or truncated "
                    "shards), the totals, the content id and the source files, and re-derive a seeded sample of "
                    f"{SAMPLE_ROWS} rows (plus the first and last) from the FASTA and bigWigs recorded in the store.",
        epilog="exit status: 0 the store is as recorded; 1 problems found (listed on stderr, one line each); "
               "2 the check could not run (e.g. not a store), with one paragraph saying why.")
    verify.add_argument("path", help="store path or URL")
    verify.add_argument("--no-sources", action="store_true",
                        help="do not re-checksum the source files nor re-derive sampled rows from them")
    listing = commands.add_parser("list", help="a table of the stores under a directory or bucket prefix")
    listing.add_argument("root", help="directory or URL (s3://bucket/prefix) holding stores")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.action == "list":
        from bpnetz.store.catalog import format_table, list_stores

        print(format_table(*list_stores(args.root)))
        return 0
    if args.action == "info":
        if args.json:
            import json

            from bpnetz.store import schema

            print(json.dumps(schema.metadata(schema.open_group(args.path)), indent=2))
        else:
            from bpnetz.store.inspect import store_info

            print(store_info(args.path))
        return 0
    from bpnetz.store.inspect import verify_store

    result = verify_store(args.path, check_sources=not args.no_sources)
    for note in result.notes:
        print(f"note: {note}")
    if result.problems:
        print(f"{args.path}: {len(result.problems)} problem(s):", file=sys.stderr)
        for problem in result.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{args.path}: OK")
    return 0
