"""Benchmark ``bpnetz batch``: N small simulated experiments on a 2-worker LocalCluster vs one after another.

    python scripts/bench_batch.py [--experiments 4] [--epochs 1] [--out /tmp/bench-batch]

Simulates N experiments (``bpnetz simulate`` with seeds 0..N-1 and rotating motif sets, the test suite's tiny
sizes), then prints: the batch's wall time (build → train → predict → shap → modisco), the same stages run one
after another through the same commands (the sum of the batch's recorded per-stage seconds, each a fresh
``python -m bpnetz`` process, is the sequential time), the idle worker-seconds per stage (2 × wall − Σ stage
seconds, over the number of stages: Dask's scheduling plus waits on the critical path), and the wall time of a
rerun with nothing changed. The per-stage seconds feed the projection in docs/atlas.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MOTIF_SETS = ("gata,ap1,ctcf", "gata,ctcf", "ap1,ctcf", "gata,ap1")
TINY = {"motif_module_params": {"filters": [8]}, "syntax_module_params": {"filters": 8, "num_dilation_layers": 2}}


def _simulate(out: Path, n: int) -> list[str]:
    rows = []
    for i in range(n):
        sim = out / f"sim{i}"
        if not (sim / "input_data.json").is_file():
            subprocess.run([sys.executable, "-m", "bpnetz", "simulate", str(sim), "--seed", str(i), "--n-chroms",
                            "3", "--chrom-length", "60000", "--n-peaks", "60", "--input-len", "400",
                            "--output-len", "200", "--max-jitter", "16", "--motifs", MOTIF_SETS[i % 4], "--quiet",
                            "--force"], check=True, stdout=subprocess.DEVNULL)
        params = json.loads((sim / "bpnet_params.json").read_text())
        for key, values in TINY.items():
            params[key].update(values)
        (sim / "tiny_params.json").write_text(json.dumps(params))
        rows.append(f"exp{i}\t{sim}/input_data.json\t{sim}/genome.fa\t{sim}/chrom.sizes\t{sim}/tiny_params.json\t"
                    f"{sim}/splits.json\t16\t--epochs {{epochs}}\t--sample 30 --num-shuffles 2\t--window 200\n")
    return rows


def _batch(manifest: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bpnetz", "batch", "run", str(manifest), "--output-dir", str(out),
                    "--workers", "2", "--stages", "predict", "modisco"], check=False, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default="/tmp/bench-batch")
    args = parser.parse_args()
    out = Path(args.out)
    rows = [r.replace("{epochs}", str(args.epochs)) for r in _simulate(out, args.experiments)]
    manifest = out / "manifest.tsv"
    manifest.write_text("name\tinput_data\tgenome\tchrom_sizes\tparams\tsplits\tmax_jitter\ttrain_args\t"
                        "shap_args\tmodisco_args\n" + "".join(rows))
    wall = _batch(manifest, out / "batch")
    outcomes = json.loads((out / "batch" / ".batch" / "run.json").read_text())["outcomes"]
    per_stage: dict[str, list[float]] = {}
    for o in outcomes:
        per_stage.setdefault(o["stage"], []).append(o["seconds"])
    sequential = sum(sum(v) for v in per_stage.values())
    rerun = _batch(manifest, out / "batch")
    print(f"{args.experiments} experiments, {len(outcomes)} stages, 2-worker LocalCluster")
    for stage, seconds in per_stage.items():
        print(f"  {stage:<8} mean {sum(seconds) / len(seconds):6.1f} s over {len(seconds)}")
    print(f"batch wall {wall:.1f} s; one after another {sequential:.1f} s ({sequential / wall:.2f}x)")
    print(f"idle worker-seconds per stage {(2 * wall - sequential) / len(outcomes):.1f} s")
    print(f"rerun with nothing changed {rerun:.1f} s")


if __name__ == "__main__":
    main()
