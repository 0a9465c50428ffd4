"""``bpnetz store info PATH`` and ``bpnetz store verify PATH`` (see bpnetz.store.inspect)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bpnetz store", description="Inspect or check a store.")
    commands = parser.add_subparsers(dest="action", required=True, metavar="{info,verify}")
    info = commands.add_parser("info", help="print what the build recorded (reads no array)")
    info.add_argument("path", help="store path")
    info.add_argument("--json", action="store_true", help="print the metadata as JSON")
    verify = commands.add_parser("verify", help="check arrays, totals, ids and sources; exit 1 on any problem")
    verify.add_argument("path", help="store path")
    verify.add_argument("--no-sources", action="store_true", help="do not re-checksum the source files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
