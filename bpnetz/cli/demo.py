"""``bpnetz demo [DIR]``: simulate → build → train → predict → shap → modisco (→ hits) on a CPU, with a summary."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bpnetz demo", description=__doc__)
    parser.add_argument("out", nargs="?", default="bpnetz-demo", metavar="DIR",
                        help="new or empty output directory (default ./bpnetz-demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation and training (0)")
    parser.add_argument("--quick", action="store_true",
                        help="a seconds-long smoke run on a tiny experiment (too small to find every motif)")
    parser.add_argument("--no-hits", action="store_true", help="skip FiNeMo hit calling even when installed")
    args = parser.parse_args(argv)
    from bpnetz.demo import DemoSize, run_demo

    result = run_demo(args.out, size=DemoSize.quick() if args.quick else None, seed=args.seed,
                      hits=not args.no_hits)
    print(result.format())
    return 0
