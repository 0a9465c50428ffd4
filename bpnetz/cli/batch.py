"""``bpnetz batch run MANIFEST --output-dir DIR`` and ``bpnetz batch status DIR`` (see bpnetz.batch)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.batch.manifest import STAGES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnetz batch",
        description="Run many experiments (a TSV or YAML manifest, see docs/atlas.md) through build, train, "
                    "predict, shap, modisco and hits on dask.distributed, each stage cached by the content of "
                    "its inputs; or show the status of a run.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) a batch")
    run.add_argument("manifest", help="manifest of experiments (.tsv, .yaml or .yml)")
    run.add_argument("--output-dir", required=True, help="one directory per experiment goes here")
    run.add_argument("--scheduler", help="address of a running dask scheduler (default: start a LocalCluster)")
    run.add_argument("--workers", type=int,
                     help="LocalCluster CPU worker processes (default: one per core not taken by a GPU worker)")
    run.add_argument("--gpus", type=int, help="LocalCluster GPU workers, one per device (default: every GPU "
                                              "found; 0: none, every stage on the CPU workers)")
    run.add_argument("--stages", nargs="+", choices=STAGES,
                     help="stages of experiments that list none (default: all; hits when FiNeMo is installed)")
    run.add_argument("--retries", type=int, default=2, help="retries of a stage whose worker or command dies (2)")
    run.add_argument("--no-report", action="store_true", help="skip the atlas report")
    status = commands.add_parser("status", help="table of experiment x stage of a batch directory")
    status.add_argument("output_dir", metavar="DIR", help="the --output-dir of a batch run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "status":
        from bpnetz.batch.status import batch_status, format_status

        print(format_status(batch_status(args.output_dir)))
        return 0
    from bpnetz.batch.runner import main_summary, run_batch

    result = run_batch(args.manifest, args.output_dir, scheduler=args.scheduler, workers=args.workers, gpus=args.gpus,
                       stages=args.stages, retries=args.retries)
    if not args.no_report:
        from bpnetz.batch.report import write_report

        paths = write_report(args.output_dir)
        print(f"atlas report: {paths[0]} and {paths[1]}")
    return main_summary(result)
