#!/usr/bin/env python
"""The counts ceiling a sequence model can reach on a panel experiment, beside the simulator's oracle.

The oracle of ``scripts/bench_quality.py`` is the simulator's expected counts, which include each site's random
strength factor (``--strength-noise``: log-normal, drawn per site, not written in the sequence). No model of the
sequence and controls can know those factors, so on noisy experiments the oracle's counts Pearson (0.98–0.99)
is not a ceiling for a model. This script re-simulates each experiment of a finished panel run with the very
same random draws but every strength factor replaced by 1 (the draws are still made, so the genome, sites,
controls and backgrounds are identical) and scores that noise-free expectation against the observed test peaks
as a **sequence oracle**: what the sequence (site scores, positions, controls) determines, up to the Poisson
noise and the strength noise. Experiments without strength noise get the oracle itself.

    python scripts/bench_ceiling.py --workdir /tmp/panel_run [--json out.json]

``--workdir`` is a ``bench_quality.py --panel --workdir`` directory whose runs have finished (predictions
written); the simulation settings are read back from its ``panel.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
PATCHED_SIMULATE = """
import runpy, sys
import numpy as np
import bpnetz.simulate.experiment as experiment
drawn = experiment.strength_factors
experiment.strength_factors = lambda n, sigma, rng: (drawn(n, sigma, rng), np.ones(n))[1]
sys.argv = ["bpnetz", *sys.argv[1:]]
runpy.run_module("bpnetz", run_name="__main__")
"""


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_quality", SCRIPTS / "bench_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def simulate_noise_free(bench, settings: dict, flags: list[str], share: float, out: Path) -> Path:
    """The experiment re-simulated into ``out`` with the same draws and strength factors of 1."""
    if not (out / "truth/expected_plus.bw").exists():
        n_peaks = str(max(50, round(int(settings["n_peaks"]) * share)))
        argv = ["simulate", str(out), "--n-peaks", settings["n_peaks"], "--n-chroms", settings["n_chroms"],
                "--chrom-length", settings["chrom_length"], "--input-len", settings["input_len"], "--output-len",
                settings["output_len"], "--seed", settings["sim_seed"], *flags, "--n-peaks", n_peaks, "--force",
                "--quiet"]
        subprocess.run([sys.executable, "-c", PATCHED_SIMULATE, *argv], check=True)
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def ceiling(bench, exp_work: Path, settings: dict, flags: list[str], share: float) -> dict[str, float]:
    """Counts Pearson on the test peaks of the model, the oracle and the sequence oracle; the log-count variance
    the strength noise adds (oracle vs sequence oracle)."""
    from bpnetz.config import Splits
    from bpnetz.model.contract import TrackGroups
    from bpnetz.store.reader import StoreReader

    exp = exp_work / "experiment"
    reader = StoreReader(exp / "store.zarr")
    groups = TrackGroups.of(reader.layout).softmax()
    Splits.load(exp / "splits.json")  # the experiment is complete
    test, _, logcounts = bench.read_bpnetz_predictions(exp_work / "predict/model_split000_predictions.h5", reader,
                                                       groups)
    observed = np.log(test.observed.sum(axis=(1, 2)) + reader.layout.n_tracks)
    _, oracle = bench.oracle_predictions(exp, reader.layout, test)
    noise_free = simulate_noise_free(bench, settings, flags, share, exp_work / "noise_free")
    _, sequence = bench.oracle_predictions(noise_free, reader.layout, test)
    return {"test_peaks": int(len(observed)), "bpnetz": pearson(logcounts[:, 0], observed),
            "oracle": pearson(oracle[:, 0], observed), "sequence_oracle": pearson(sequence[:, 0], observed),
            "oracle_vs_sequence_oracle": pearson(oracle[:, 0], sequence[:, 0])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a finished bench_quality.py --panel workdir")
    parser.add_argument("--json", type=Path, help="results JSON (default: <workdir>/ceiling.json)")
    args = parser.parse_args()
    bench = bench_module()
    panel = json.loads((args.workdir / "panel.json").read_text())
    settings = panel["settings"]
    shares = {name: share for name, _, share in bench.PANEL}
    flags = {name: list(f) for name, f, _ in bench.PANEL}  # not panel.json's: it named the wrong flags before
    index = {name: i for i, (name, _, _) in enumerate(bench.PANEL)}
    rows = {}
    print("| experiment | half | bpnetz | sequence oracle | oracle | bpnetz / sequence oracle | bpnetz / oracle |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for entry in panel["panel"]:
        name = entry["name"]
        r = ceiling(bench, args.workdir / "panel" / f"{index[name]:02d}", settings, flags[name], shares[name])
        rows[name] = {"half": entry["half"], **r}
        print(f"| {name} | {entry['half']} | {r['bpnetz']:.3f} | {r['sequence_oracle']:.3f} | {r['oracle']:.3f} | "
              f"{r['bpnetz'] / r['sequence_oracle']:.2f} | {r['bpnetz'] / r['oracle']:.2f} |", flush=True)
    out = args.json or args.workdir / "ceiling.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
