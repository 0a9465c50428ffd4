"""The atlas report of a batch directory: ``atlas_report.tsv`` and one self-contained ``atlas_report.html``.

Per experiment and model (fold) and task: the store's content id, the held-out metrics that ``bpnetz predict``
wrote to ``metrics.json`` (counts Pearson, profile Pearson, JSD) beside its position-independent baseline and
replicate-like upper bound, the learning curves ``bpnetz train`` drew (a thumbnail), and the stage errors.

Motifs across experiments: the tfmodisco-lite patterns of every experiment are grouped greedily — strongest
(most seqlets) first, each joins the group whose representative it matches best when the similarity of
:func:`bpnetz.motifs.compare.align_motifs` (IC-weighted cosine at the best alignment, either strand) is at least
:data:`SAME_MOTIF` (0.8, the threshold ``match_motifs`` uses for "the same motif"), else it founds a group. The
page shows each group's logo (modisco's CWM logo of its representative) and, per experiment, the matching
pattern, its similarity and seqlets: which motifs recur in which experiments. Images are inlined as base64
PNGs, so the page is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bpnetz.batch.status import batch_status
from bpnetz.files.atomic import write_text

SAME_MOTIF = 0.8
METRICS = (("counts_pearson", None), ("profile_pearson", "mean"), ("jsd", "mean"))
POINTS = ("model", "baseline", "upper_bound")


@dataclass
class MotifGroup:
    """Patterns of several experiments judged the same motif; the first member is the representative."""

    name: str
    pfm: Any
    logo: Path | None
    consensus: str
    members: dict[str, tuple[str, float, int]] = field(default_factory=dict)  # experiment -> (pattern, sim, n)


def _store_content_id(root: Path) -> str:
    try:
        return json.loads((root / "store.zarr" / "zarr.json").read_text())["attributes"]["bpnetz"]["checksum"]
    except (OSError, ValueError, KeyError):
        return ""


def _metric(summary: dict[str, Any], name: str, stat: str | None) -> float | None:
    value = summary.get(name)
    if isinstance(value, dict):
        value = value.get(stat)
    return None if value is None else float(value)


def metric_rows(out: Path, experiment: str, errors: str) -> list[dict[str, Any]]:
    """One row per (model, task) of an experiment's predictions; one empty row when there are none."""
    root = out / experiment
    base = {"experiment": experiment, "store_content_id": _store_content_id(root), "errors": errors}
    rows = []
    for metrics_file in sorted((root / "pred").glob("**/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        results = metrics.get("results", {})
        model = Path(metrics.get("model", "")).name
        for task in results.get("model", {}).get("task", {}):
            row = {**base, "model": model, "task": task, "n_examples": metrics.get("n_examples")}
            for name, stat in METRICS:
                for point in POINTS:
                    summary = results.get(point, {}).get("task", {}).get(task, {})
                    row[f"{name}_{point}"] = _metric(summary, name, stat)
            rows.append(row)
    return rows or [{**base, "model": "", "task": "", "n_examples": None}]


def group_motifs(patterns: dict[str, list], logos: dict[str, Path]) -> list[MotifGroup]:
    """Group the patterns of every experiment (experiment -> patterns) by similarity (module docstring)."""
    from bpnetz.motifs.compare import align_motifs

    everything = sorted(((exp, p) for exp, ps in patterns.items() for p in ps), key=lambda ep: -ep[1].n_seqlets)
    groups: list[MotifGroup] = []
    for exp, pattern in everything:
        scored = [(align_motifs(g.pfm, pattern.pfm).similarity, g) for g in groups if exp not in g.members]
        similarity, group = max(scored, key=lambda sg: sg[0], default=(0.0, None))
        if group is None or similarity < SAME_MOTIF:
            logo = logos[exp] / f"{pattern.name}.cwm_fwd.png" if exp in logos else None
            group = MotifGroup(f"motif {len(groups) + 1}", pattern.pfm, logo, pattern.consensus)
            groups.append(group)
            similarity = 1.0
        group.members[exp] = (pattern.name, round(float(similarity), 3), pattern.n_seqlets)
    return groups


def _experiment_motifs(out: Path, experiments: list[str]) -> list[MotifGroup]:
    from bpnetz.motifs.modisco import load_patterns

    patterns, logos = {}, {}
    for exp in experiments:
        results = sorted((out / exp / "modisco").glob("**/modisco_results.h5"))
        if results:
            patterns[exp] = load_patterns(results[0])
            logos[exp] = results[0].parent / "logos"
    return group_motifs(patterns, logos)


def _image(path: Path | None, width: int) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img width="{width}" src="data:image/png;base64,{data}">'


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _metrics_html(out: Path, rows: list[dict[str, Any]], motifs_of: dict[str, str]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(name)} ({point.replace('_', ' ')})</th>" for name, _ in METRICS for point in POINTS)
    lines = [("<table id='metrics'><tr><th>experiment</th><th>model</th><th>task</th><th>store content id</th>"
              f"<th>n</th>{head}<th>learning curves</th><th>motifs</th><th>errors</th></tr>")]
    for row in rows:
        curves = out / row["experiment"] / "models" / (row["model"] or "model_split000") / "learning_curves.png"
        cells = "".join(f"<td>{_number(row.get(f'{n}_{p}'))}</td>" for n, _ in METRICS for p in POINTS)
        lines.append(f"<tr class='experiment' data-name='{esc(row['experiment'])}'><td>{esc(row['experiment'])}"
                     f"</td><td>{esc(row['model'])}</td><td>{esc(str(row['task']))}</td>"
                     f"<td><code>{esc(row['store_content_id'])}</code></td><td>{_number(row['n_examples'])}</td>"
                     f"{cells}<td>{_image(curves, 160)}</td><td>{esc(motifs_of.get(row['experiment'], ''))}</td>"
                     f"<td class='error'>{esc(row['errors'])}</td></tr>")
    return "\n".join(lines) + "</table>"


def _motifs_html(groups: list[MotifGroup], experiments: list[str]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(e)}</th>" for e in experiments)
    lines = [f"<table id='motifs'><tr><th>motif</th><th>logo</th><th>consensus</th><th>experiments</th>{head}</tr>"]
    for group in groups:
        cells = "".join(f"<td>{esc(m[0])}<br>similarity {m[1]:.2f}, {m[2]} seqlets</td>" if (m := group.members.get(
            e)) else "<td></td>" for e in experiments)
        lines.append(f"<tr class='motif'><td>{esc(group.name)}</td><td>{_image(group.logo, 240)}</td>"
                     f"<td><code>{esc(group.consensus)}</code></td><td>{len(group.members)}</td>{cells}</tr>")
    if not groups:
        lines.append("<tr><td colspan='4'>no experiment has tfmodisco-lite patterns</td></tr>")
    return "\n".join(lines) + "</table>"


def write_report(output_dir: str | Path) -> tuple[Path, Path]:
    """Write ``atlas_report.tsv`` and ``atlas_report.html`` into the batch directory; returns their paths."""
    out = Path(output_dir).absolute()
    status = batch_status(out)
    experiments = [row["experiment"] for row in status["rows"]]
    errors = {row["experiment"]: "; ".join(f"{s}: {row[s][2]}" for s in row if isinstance(row[s], tuple)
                                           and row[s][0] == "failed") for row in status["rows"]}
    rows = [r for exp in experiments for r in metric_rows(out, exp, errors[exp])]
    groups = _experiment_motifs(out, experiments)
    motifs_of = {exp: ", ".join(g.name for g in groups if exp in g.members) for exp in experiments}
    for row in rows:
        row["motifs"] = motifs_of[row["experiment"]]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _number(v) for k, v in row.items()} for row in rows)
    tsv = write_text(out / "atlas_report.tsv", buffer.getvalue())
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>bpnetz atlas report</title><style>"
            "body{font-family:sans-serif} table{border-collapse:collapse} td,th{border:1px solid #ccc;"
            "padding:3px;font-size:12px} .error{color:#a00}</style></head><body>"
            f"<h1>bpnetz atlas report: {len(experiments)} experiments</h1><h2>Held-out metrics</h2>"
            f"{_metrics_html(out, rows, motifs_of)}<h2>Motifs across experiments</h2>"
            f"<p>Patterns with similarity &ge; {SAME_MOTIF} are the same motif.</p>"
            f"{_motifs_html(groups, experiments)}</body></html>\n")
    return tsv, write_text(out / "atlas_report.html", page)
