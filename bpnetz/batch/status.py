"""``bpnetz batch status DIR``: a table of experiment × stage read from the records a run leaves.

A cell is, in order of precedence: ``running`` (a marker of the live run, with the seconds since it started),
the outcome of the last finished run (``done``/``cached``/``failed``/``skipped`` with its wall time) when that
run is newer than the current plan, else what the records say (``done`` or ``failed``), else ``pending`` for a
stage of the plan and ``-`` for one the experiment did not ask for. A run killed before it finished leaves
markers whose process is gone: those cells read ``interrupted``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bpnetz.batch.manifest import STAGES
from bpnetz.batch.records import RECORDS, read_json, record_path
from bpnetz.errors import InputError


def _alive(plan: dict[str, Any]) -> bool:
    if plan.get("host") != os.uname().nodename or "pid" not in plan:
        return False
    try:
        os.kill(int(plan["pid"]), 0)
    except OSError:
        return False
    return True


def _cell(root: Path, stage: str, last: dict[str, Any] | None, live: bool) -> tuple[str, float, str]:
    """(state, seconds, error) of one stage."""
    running = read_json(record_path(root, stage, "running"))
    if running is not None:
        return ("running" if live else "interrupted"), time.time() - running.get("started", time.time()), ""
    if last is not None:
        return last["status"], float(last.get("seconds", 0.0)), last.get("error", "")
    failure = read_json(record_path(root, stage, "failed.json"))
    if failure is not None:
        return "failed", 0.0, failure.get("error", "")
    record = read_json(record_path(root, stage))
    if record is not None:
        return "done", float(record.get("seconds", 0.0)), ""
    return "pending", 0.0, ""


def batch_status(output_dir: str | Path) -> dict[str, Any]:
    """``{"rows": [{"experiment", "store", <stage>: (state, seconds, error)}], "live", "dashboard"}``."""
    out = Path(output_dir)
    plan = read_json(out / RECORDS / "plan.json")
    if plan is None:
        raise InputError("holds no batch run (no .batch/plan.json).", path=out,
                         fix="Pass the --output-dir of a 'bpnetz batch run'.")
    run = read_json(out / RECORDS / "run.json") or {}
    fresh = run.get("finished", 0) >= plan.get("started", 0)
    last = {(o["experiment"], o["stage"]): o for o in run.get("outcomes", [])} if fresh else {}
    live = _alive(plan) and not fresh
    rows = []
    for name, entry in plan["experiments"].items():
        row: dict[str, Any] = {"experiment": name, "store": entry["store"]}
        for stage in STAGES:
            owner, root = (f"stores/{entry['store']}", out / "stores" / entry["store"]) if stage == "build" \
                else (name, out / name)
            wanted = stage in entry["stages"]
            row[stage] = _cell(root, stage, last.get((owner, stage)), live) if wanted else ("-", 0.0, "")
        rows.append(row)
    return {"rows": rows, "live": live, "dashboard": plan.get("dashboard", "")}


def format_status(status: dict[str, Any]) -> str:
    """The table as text, then one line per failed stage with its error."""
    header = ["experiment", *STAGES]
    table = [header]
    failures = []
    for row in status["rows"]:
        cells = [row["experiment"]]
        for stage in STAGES:
            state, seconds, error = row[stage]
            cells.append(f"{state} {seconds:.0f}s" if seconds and state not in ("-", "pending") else state)
            if state == "failed":
                failures.append(f"{row['experiment']} {stage}: {error}")
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    if status["live"]:
        lines.insert(0, f"running; dashboard {status['dashboard']}")
    return "\n".join(lines + [f"failed: {f}" for f in dict.fromkeys(failures)])
