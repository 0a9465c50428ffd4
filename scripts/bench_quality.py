#!/usr/bin/env python
"""Model quality against a ceiling and a peer, on one simulated experiment, in one run.

1. ``bpnetz simulate`` an experiment and ``bpnetz build`` its store (input/output lengths scaled for the CPU;
   when the simulated bpnet_params.json has more dilated layers than the input length allows, the largest number
   that fits is used, for bpnetz and the peer alike, and the table says so).
2. ``bpnetz train`` with the simulated bpnet_params.json and every training default (counts-loss weight from the
   reference formula, early stopping, LR schedule), ``--epochs`` as the budget; ``bpnetz predict`` the held-out
   test chromosome's peaks.
3. **oracle**: the simulator's ground truth, ``truth/expected_{plus,minus}.bw`` (the Poisson means of the ChIP
   counts) over each test locus' output window: profile = expected rates normalised jointly over both strands,
   log count = log(expected total + 2), the model contract's pseudocount (one per track). No model can beat it on
   average; it is the ceiling the Poisson noise allows.
4. **peer**: bpnet-lite's ``BPNet`` (same filters and dilated layers, trimming in -> out) trained by
   ``scripts/peer_bpnetlite.py`` under a separate interpreter (``--peer-python``, default
   ``/work/peer-venv/bin/python``) on exactly the loci bpnetz trains and validates on, exported from the store:
   training peaks with windows widened by ``max_jitter`` on each side (bpnet-lite's sampler draws the jitter and
   the reverse-complement flips itself), all training-chromosome backgrounds (sampled each epoch at the store's
   background ratio, so an epoch has as many examples as bpnetz's), and the same validation loci (peaks + the
   fixed background draw). Controls over the whole input window are read from the control bigWigs (bpnet-lite
   convolves them over the input). Same epoch budget and batch size; bpnet-lite's own recipe otherwise.
   Its predicted log(1 + total) is mapped to the contract's log(2 + total) as log(exp(y) + 1).
5. The same metrics (bpnetz.predict.metrics.compute_metrics) for bpnetz, bpnet-lite, the oracle, the
   position-independent baseline (average training-peak profile, mean log count) and the binomial-thinning
   upper bound (a half-depth replicate); one table printed, everything written to JSON.

    python scripts/bench_quality.py [--n-peaks 2000] [--epochs 10] [--input-len 1000 --output-len 500]
                                    [--quick] [--no-peer] [--workdir DIR] [--train-args "--learning-rate 0.001"]
                                    [--set counts_loss='"POISSON"'] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
PEER_SCRIPT = SCRIPTS / "peer_bpnetlite.py"
DEFAULT_PEER_PYTHON = "/work/peer-venv/bin/python"
COLUMNS = ("bpnetz", "bpnet-lite", "oracle", "baseline", "upper bound")
#: printed rows: (label, metric key at the task level); profile metrics are medians over test loci.
ROWS = (("counts pearson", "counts_pearson"), ("counts spearman", "counts_spearman"), ("counts mse", "counts_mse"),
        ("profile pearson (median)", "profile_pearson"), ("jsd norm (median, 1=best)", "jsd_norm"),
        ("jsd (median)", "jsd"), ("mnll norm (median, 1=best)", "mnll_norm"))
UPPER_BOUND_SEED = 0


# ------------------------------------------------------------------------------------------------ commands


def run(cmd: list[str], cwd: Path | None = None) -> float:
    """Run a command (output passed through), raise on failure; returns its wall-clock seconds.

    OpenMP threads wait passively: on a shared machine, torch's default spinning made a 2-thread training step
    5x slower than a 1-thread one (measured); TensorFlow's own thread pool is not affected.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", OMP_WAIT_POLICY="PASSIVE")
    print(f"$ {' '.join(shlex.quote(c) for c in cmd)}", file=sys.stderr, flush=True)
    began = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True)
    return time.perf_counter() - began


def simulate_and_build(exp: Path, args: argparse.Namespace, flags: list[str] | None = None) -> Path:
    """The simulated experiment with its store (reused when ``exp/store.zarr`` exists); ``flags`` are extra
    ``bpnetz simulate`` flags (a panel experiment's variation, which may set --n-peaks and --seed again)."""
    store = exp / "store.zarr"
    if store.exists():
        return store
    run(["bpnetz", "simulate", str(exp), "--n-peaks", str(args.n_peaks), "--n-chroms", str(args.n_chroms),
         "--chrom-length", str(args.chrom_length), "--input-len", str(args.input_len), "--output-len",
         str(args.output_len), "--seed", str(args.sim_seed), *(flags or []), "--force", "--quiet"])
    run(["bpnetz", "build", "--input-data", "input_data.json", "--reference-genome", "genome.fa", "--chrom-sizes",
         "chrom.sizes", "--input-seq-len", str(args.input_len), "--output-len", str(args.output_len), "--output",
         "store.zarr", "--quiet"], cwd=exp)
    return store


def fitted_params(exp: Path, overrides: list[str], out: Path, *, filters: int | None = None,
                  layers: int | None = None) -> tuple[Path, dict[str, Any], str | None]:
    """The simulated bpnet_params.json with ``filters`` (motif and dilated convolutions), ``layers`` (dilated) and
    ``KEY=JSON`` overrides and, when the input is too short for its dilated layers, the largest number of layers
    that fits; written to ``out``. Returns (path, params, note)."""
    from bpnetz.config import BpnetParams
    from bpnetz.errors import InputError
    from bpnetz.model.bpnet import model_lengths

    raw = json.loads((exp / "bpnet_params.json").read_text())
    for item in overrides:
        key, _, value = item.partition("=")
        raw[key] = json.loads(value)
    syntax = raw["syntax_module_params"]
    if filters:
        raw["motif_module_params"]["filters"] = [filters] * len(raw["motif_module_params"]["filters"])
        syntax["filters"] = filters
    if layers:
        syntax["num_dilation_layers"] = layers
    note = None
    while True:
        try:
            model_lengths(BpnetParams.model_validate(raw))
            break
        except InputError:
            if syntax["num_dilation_layers"] <= 1:
                raise
            syntax["num_dilation_layers"] -= 1
            note = (f"{syntax['num_dilation_layers']} dilated layers (the simulated params' count does not fit "
                    f"input {raw['input_len']} -> output {raw['output_profile_len']})")
    out.write_text(json.dumps(raw, indent=2) + "\n")
    return out, raw, note


# ------------------------------------------------------------------------------------------------ test loci


@dataclass
class TestLoci:
    """The held-out loci bpnetz predicted, in store order, and what was observed there."""

    rows: np.ndarray  # store rows
    chrom: np.ndarray
    summit: np.ndarray
    observed: np.ndarray  # (N, output_len, tracks) counts


def read_bpnetz_predictions(h5_path: Path, reader: Any, groups: list[list[int]]) -> tuple[TestLoci, np.ndarray,
                                                                                          np.ndarray]:
    """Test loci and bpnetz's predictions (joint probabilities, group log counts) from the predictions h5.

    ``pred_profs`` holds predicted counts = probabilities × exp(group log count), so both are recovered exactly
    (to float32). The store rows are found by (chromosome, summit); the observed counts are checked against them.
    """
    import h5py

    layout = reader.layout
    with h5py.File(h5_path, "r") as h5:
        chrom = np.array([c.decode() if isinstance(c, bytes) else str(c) for c in h5["coords/coords_chrom"][:]])
        start = h5["coords/coords_start"][:]
        counts = h5["predictions/pred_profs"][:].astype(np.float64)
        observed = h5["predictions/true_profs"][:]
    summit = start + layout.output_len // 2
    loci = reader.loci
    peaks = loci[loci["kind"].to_numpy() == 0]
    index = {(c, int(s)): int(r) for c, s, r in zip(peaks["chrom"], peaks["summit"], peaks.index)}
    rows = np.array([index[(c, int(s))] for c, s in zip(chrom, summit)], dtype=np.int64)
    stored = reader.read_rows(np.sort(rows)).signal
    mj = layout.max_jitter
    stored = stored[np.argsort(np.argsort(rows)), mj:mj + layout.output_len]
    if not np.array_equal(stored, observed):
        raise RuntimeError("the predictions file's observed counts differ from the store's")
    probs = np.empty_like(counts)
    logcounts = np.empty((len(rows), len(groups)))
    for g, tracks in enumerate(groups):
        total = counts[:, :, tracks].sum(axis=(1, 2))
        probs[:, :, tracks] = counts[:, :, tracks] / total[:, None, None]
        logcounts[:, g] = np.log(total)
    return TestLoci(rows, chrom, summit, observed.astype(np.float64)), probs, logcounts


def oracle_predictions(exp: Path, layout: Any, test: TestLoci) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's expected counts over each test output window: joint probabilities and log(total + 2)."""
    import pyBigWig

    files = {"+": exp / "truth/expected_plus.bw", "-": exp / "truth/expected_minus.bw"}
    expected = np.zeros(test.observed.shape)
    half = layout.output_len // 2
    for t, track in enumerate(layout.tracks):
        bw = pyBigWig.open(str(files[track.strand]))
        for i, (c, s) in enumerate(zip(test.chrom, test.summit)):
            expected[i, :, t] = np.nan_to_num(bw.values(str(c), int(s) - half, int(s) - half + layout.output_len,
                                                        numpy=True))
        bw.close()
    total = expected.sum(axis=(1, 2))
    return expected / total[:, None, None], np.log(total + layout.n_tracks)[:, None]


def baseline_reference(reader: Any, train_chroms: list[str]) -> np.ndarray:
    """Observed counts of the training chromosomes' peaks over their output windows (the baseline's average)."""
    loci = reader.loci
    rows = np.flatnonzero(loci["chrom"].isin(set(train_chroms)).to_numpy() & (loci["kind"].to_numpy() == 0))
    mj, out = reader.layout.max_jitter, reader.layout.output_len
    return reader.read_rows(rows).signal[:, mj:mj + out].astype(np.float64)


# ------------------------------------------------------------------------------------------------ the peer


def control_windows(layout: Any, chrom: np.ndarray, summit: np.ndarray) -> np.ndarray:
    """(N, bias tracks, seq_len) control counts over each locus' stored sequence window, from the control
    bigWigs named in the layout."""
    import pyBigWig

    out = np.zeros((len(chrom), layout.n_bias, layout.seq_len), np.float32)
    for b, track in enumerate(layout.bias_tracks):
        bw = pyBigWig.open(str(track.source))
        for i, (c, s) in enumerate(zip(chrom, summit)):
            lo, hi = layout.seq_window(int(s))
            out[i, b] = np.nan_to_num(bw.values(str(c), lo, hi, numpy=True))
        bw.close()
    return out


def peer_arrays(reader: Any, rows: np.ndarray, prefix: str, *, widened: bool) -> dict[str, np.ndarray]:
    """Sequence codes, signal (tracks first) and controls of store rows for bpnet-lite.

    ``widened``: windows of input/output + 2·max_jitter (the store's rows as stored, for bpnet-lite's jitter);
    otherwise the centred input/output windows. Controls come from the bigWigs over the sequence window; over
    the stored profile window they must equal the store's bias rows (checked).
    """
    lay = reader.layout
    raw = reader.read_rows(np.sort(rows))
    order = np.argsort(np.argsort(rows))
    seq, signal, bias = raw.seq[order], raw.signal[order], raw.bias[order]
    loci = reader.loci.iloc[rows]
    chrom, summit = loci["chrom"].to_numpy(), loci["summit"].to_numpy()
    control = control_windows(lay, chrom, summit)
    inner = lay.input_len // 2 - lay.output_len // 2  # profile window inside the sequence window
    if not np.array_equal(control[:, :, inner:inner + lay.profile_len], bias.transpose(0, 2, 1)):
        raise RuntimeError("control bigWig windows differ from the store's bias rows")
    if not widened:
        mj = lay.max_jitter
        seq, control = seq[:, mj:mj + lay.input_len], control[:, :, mj:mj + lay.input_len]
        signal = signal[:, mj:mj + lay.output_len]
    return {f"{prefix}_seq": np.ascontiguousarray(seq, dtype=np.uint8),
            f"{prefix}_signal": np.ascontiguousarray(signal.transpose(0, 2, 1), dtype=np.float32),
            f"{prefix}_control": control}


def export_peer_data(reader: Any, fold: Any, test: TestLoci, seed: int, path: Path,
                     settings: dict[str, Any]) -> dict[str, int]:
    """Write the peer's .npz: the loci bpnetz trains, validates and is tested on. Returns the locus counts."""
    from bpnetz.store.stream import LocusStream

    loci = reader.loci
    train = loci["chrom"].isin(set(fold.train_chroms(reader.chromosomes))).to_numpy()
    kind = loci["kind"].to_numpy()
    val_rows = LocusStream(reader, fold, "val", batch_size=64, seed=seed, cache=False).loci()["row"].to_numpy()
    parts = {**peer_arrays(reader, np.flatnonzero(train & (kind == 0)), "train_peak", widened=True),
             **peer_arrays(reader, np.flatnonzero(train & (kind == 1)), "train_bg", widened=False),
             **peer_arrays(reader, val_rows, "val", widened=False),
             **peer_arrays(reader, test.rows, "test", widened=False)}
    if not np.array_equal(parts["test_signal"].transpose(0, 2, 1), test.observed):
        raise RuntimeError("exported test signal differs from the predicted loci's observed counts")
    np.savez(path, settings=np.array(json.dumps(settings)), **parts)
    return {k.removesuffix("_seq"): len(v) for k, v in parts.items() if k.endswith("_seq")}


def run_peer(python: str, data: Path, workdir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any], float]:
    """Train and predict with bpnet-lite; returns (logits (N, L, 2), contract log counts (N, 1), history, wall s)."""
    out = workdir / "peer_out.npz"
    wall = run([python, str(PEER_SCRIPT), "--data", str(data), "--out", str(out), "--workdir", str(workdir)])
    with np.load(out) as npz:
        logits = npz["test_logits"].transpose(0, 2, 1).astype(np.float64)
        log1p_total = npz["test_logcounts"].astype(np.float64)
        history = json.loads(str(npz["history"]))
    return logits, np.logaddexp(log1p_total, 0.0)[:, None], history, wall


# ------------------------------------------------------------------------------------------------ the table


def task_value(result: Any, key: str) -> float | None:
    """A task-level metric of the first task: the median for profile metrics, the value for counts metrics."""
    entry = next(iter(result.summary()["task"].values()))[key]
    return entry["median"] if isinstance(entry, dict) else entry


def format_table(values: dict[str, dict[str, float | None]], extra: dict[str, dict[str, str]], header: str) -> str:
    names = [c for c in COLUMNS if c in next(iter(values.values()))]
    width = max(len(label) for label, _ in ROWS) + 2
    lines = [header, f"{'':<{width}}" + "".join(f"{n:>13}" for n in names)]
    for label, key in ROWS:
        cells = ["n/a" if values[key][n] is None else f"{values[key][n]:.3f}" for n in names]
        lines.append(f"{label:<{width}}" + "".join(f"{c:>13}" for c in cells))
    for label, row in extra.items():
        lines.append(f"{label:<{width}}" + "".join(f"{row.get(n, ''):>13}" for n in names))
    return "\n".join(lines)


def code_version() -> dict[str, Any]:
    """The bpnetz commit and the package files modified in the working tree (an editable install runs them)."""
    root = SCRIPTS.parent

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], check=False, cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": git("status", "--porcelain", "--", "bpnetz").splitlines()}


def write_json(path: Path, data: dict[str, Any]) -> None:
    from bpnetz.files.atomic import write_text

    write_text(path, json.dumps(data, indent=2, default=str) + "\n")



# ------------------------------------------------------------------------------------------------ the panel

JASPAR3 = "jaspar:GATA1,jaspar:CTCF,jaspar:POU5F1::SOX2"
#: differently generated experiments: (name, `bpnetz simulate` flags, share of --n-peaks). Even indices are the
#: tuning half, odd ones the reporting half; seeds differ from the single-experiment default (0).
PANEL = (
    ("builtin", ["--motifs", "gata,ap1,ctcf", "--seed", "11"], 1.0),
    ("jaspar3 noisy gaussian leaky", ["--motifs", JASPAR3, "--strength-noise", "0.8", "--footprint", "gaussian",
                                      "--control-leak", "0.6", "--seed", "12"], 1.0),
    ("jaspar chipseq shallow", ["--motifs", "jaspar:CTCF,jaspar:GATA1", "--footprint", "chipseq", "--depth", "0.5",
                                "--strength-noise", "0.4", "--seed", "13"], 1.2),
    ("sox/oct/nrf1 deep noisy", ["--motifs", "sox,oct,nrf1", "--strength-noise", "0.5", "--depth", "2",
                                 "--seed", "14"], 0.8),
    ("low depth", ["--motifs", "gata,ap1,ctcf", "--depth", "0.3", "--strength-noise", "0.3", "--seed", "15"], 1.0),
    ("jaspar many negatives", ["--motifs", "jaspar:POU5F1::SOX2,gata", "--background-ratio", "1.0",
                               "--control-leak", "0.8", "--strength-noise", "0.6", "--seed", "16"], 1.0),
    ("wide nexus very noisy", ["--motifs", "ap1,ctcf,sox", "--footprint-scale", "2", "--strength-noise", "1.0",
                               "--seed", "17"], 1.2),
    ("jaspar3 strong leak", ["--motifs", JASPAR3, "--strength-noise", "0.6", "--control-leak", "1.0",
                             "--background-ratio", "0.5", "--footprint-scale", "1.5", "--seed", "18"], 0.8),
    ("jaspar3 chipseq deep", ["--motifs", JASPAR3, "--footprint", "chipseq", "--depth", "2", "--strength-noise",
                              "0.8", "--seed", "19"], 1.0),
    ("builtin 5 motifs", ["--motifs", "gata,ap1,ctcf,sox,nrf1", "--strength-noise", "0.5", "--control-leak", "0.2",
                          "--seed", "20"], 1.4),
)
PANEL_ROWS = (("counts Pearson", "counts_pearson", ("bpnetz", "bpnet-lite", "oracle")),
              ("counts MSE", "counts_mse", ("bpnetz", "baseline", "bpnet-lite", "oracle")),
              ("profile Pearson", "profile_pearson", ("bpnetz", "baseline", "bpnet-lite", "oracle")),
              ("JSD", "jsd", ("bpnetz", "baseline", "bpnet-lite", "oracle")))


def panel_columns() -> list[tuple[str, str, str]]:
    """(label, metric key, model) of every panel table column."""
    return [(f"{label} {model}", key, model) for label, key, models in PANEL_ROWS for model in models]


def panel_row(payload: dict[str, Any]) -> dict[str, float | None]:
    """One experiment's panel values, with the predicted and observed log-count SD."""
    row = {f"{label}": payload["table"][key].get(model) for label, key, model in panel_columns()}
    spread = payload["predicted_logcount_sd"]
    row["log-count SD bpnetz"], row["log-count SD observed"] = spread["bpnetz"], spread["observed"]
    return row


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def panel_table(rows: list[tuple[str, str, dict[str, float | None]]]) -> str:
    """A markdown table: one line per experiment, then the median of each half and of all."""
    labels = list(rows[0][2])
    lines = ["| experiment | half | " + " | ".join(labels) + " |", "|---|---|" + "---:|" * len(labels)]
    for name, half, row in rows:
        lines.append(f"| {name} | {half} | " + " | ".join(_cell(row[k]) for k in labels) + " |")
    for half in ("tuning", "reporting", "all"):
        chosen = [row for _, h, row in rows if half in ("all", h)]
        if not chosen:
            continue
        medians = {k: (float(np.median([r[k] for r in chosen])) if all(r[k] is not None for r in chosen) else None)
                   for k in labels}
        lines.append(f"| **median** | {half} | " + " | ".join(_cell(medians[k]) for k in labels) + " |")
    return "\n".join(lines)


def acceptance(rows: list[tuple[str, str, dict[str, float | None]]]) -> list[str]:
    """The issue's acceptance checks, one line each."""
    out = []
    for name, _, r in rows:
        out.append(f"{name}: counts MSE {r['counts MSE bpnetz']:.3f} vs constant {r['counts MSE baseline']:.3f} "
                   f"({'below' if r['counts MSE bpnetz'] < r['counts MSE baseline'] else 'NOT below'}); "
                   f"log-count SD {r['log-count SD bpnetz']:.3f} vs observed {r['log-count SD observed']:.3f} "
                   f"({'not wider' if r['log-count SD bpnetz'] <= r['log-count SD observed'] else 'WIDER'})")
    ratio = [r["counts Pearson bpnetz"] / r["counts Pearson oracle"] for _, _, r in rows]
    out.append(f"counts Pearson / oracle's, panel median: {np.median(ratio):.3f} (target >= 0.6)")
    return out


OLD_REFIT = "ridge on training all loci, alpha 0"  # the least-squares refit bpnetz used before


def counts_head_table(records: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown: per experiment, validation-peak log-count MSE of the constant predictor, the trained head, the
    old refit (least squares on all training loci, uncalibrated) and the chosen head; the chosen head's fit on
    training peaks; predicted vs observed log-count SD on validation peaks."""
    header = ("| experiment | constant | trained head | old refit (OLS, all loci) | chosen | training peaks: trained / "
              "chosen | SD trained / chosen / observed | chosen head |")
    lines = [header, "|---|---:|---:|---:|---:|---|---|---|"]
    for name, r in records:
        old = r.get("candidate_val_peaks_mse_uncalibrated", {}).get(OLD_REFIT)
        lines.append(f"| {name} | {r['val_peaks_mse_constant']:.3f} | {r['val_peaks_mse_trained']:.3f} | "
                     f"{_cell(old)} | {r['val_peaks_mse']:.3f} | "
                     f"{r['train_peaks_mse_trained']:.3f} / {r['train_peaks_mse']:.3f} | "
                     f"{r['val_peaks_sd_predicted_trained']:.2f} / {r['val_peaks_sd_predicted']:.2f} / "
                     f"{r['val_peaks_sd_observed']:.2f} | {r['chosen']}, slope {r['slope'][0]:.2f} |")
    return "\n".join(lines)


def run_panel(args: argparse.Namespace, work: Path) -> int:
    """Simulate, build, train and score every panel experiment (kept under ``work/panel/NN``); print the table."""
    began = time.perf_counter()
    rows = []
    flags_of = {name: flags for name, flags, _ in PANEL}  # (rows hold one half only when --panel-half is given)
    for i, (name, flags, share) in enumerate(PANEL):
        half = "tuning" if i % 2 == 0 else "reporting"
        if args.panel_only:  # the named experiments, whatever --panel-size and --panel-half say
            if name not in args.panel_only:
                continue
        elif i >= args.panel_size or args.panel_half not in ("all", half):
            continue
        exp_work = work / "panel" / f"{i:02d}"
        exp_work.mkdir(parents=True, exist_ok=True)
        sub = argparse.Namespace(**{**vars(args), "json": None})
        n_peaks = ["--n-peaks", str(max(50, round(args.n_peaks * share)))]
        store = simulate_and_build(exp_work / "experiment", sub, [*flags, *n_peaks])
        payload = bench(sub, exp_work, exp_work / "experiment", store, time.perf_counter())
        rows.append((name, half, panel_row(payload)))
        write_json(work / "panel.json", {"settings": {k: str(v) for k, v in vars(args).items()},
                                         "panel": [{"name": n, "half": h, "flags": flags_of[n], "values": r}
                                                   for n, h, r in rows],
                                         "seconds": round(time.perf_counter() - began, 1)})
        print(panel_table(rows), flush=True)
    print("\n".join(acceptance(rows)))
    print(f"panel: {len(rows)} experiments in {time.perf_counter() - began:.0f} s; results in {work / 'panel.json'}")
    return 0

# ------------------------------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-peaks", type=int, default=2000, help="bound regions simulated (2000)")
    parser.add_argument("--n-chroms", type=int, default=6, help="chromosomes (6: test chr1, val chr2, train rest)")
    parser.add_argument("--chrom-length", type=int, default=1_000_000, help="length of chr1 (1000000)")
    parser.add_argument("--input-len", type=int, default=1000, help="model input length (1000; 2114 is the default "
                                                                     "of the tools, ~3x slower)")
    parser.add_argument("--output-len", type=int, default=500, help="model output length (500)")
    parser.add_argument("--epochs", type=int, default=10, help="epoch budget of both trainings (10)")
    parser.add_argument("--batch-size", type=int, default=64, help="both trainings (64, the tools' default)")
    parser.add_argument("--seed", type=int, default=1234, help="training seed of both models (1234)")
    parser.add_argument("--sim-seed", type=int, default=0, help="simulation seed (0)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads per training")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 400 peaks, 300 kb, 2 epochs")
    parser.add_argument("--experiment", type=Path, help="reuse this simulated experiment (built store inside)")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory)")
    parser.add_argument("--no-peer", action="store_true", help="skip bpnet-lite (quick default-tuning experiments)")
    parser.add_argument("--peer-python", default=os.environ.get("BPNETZ_PEER_PYTHON", DEFAULT_PEER_PYTHON),
                        help=f"interpreter with bpnet-lite installed ({DEFAULT_PEER_PYTHON})")
    parser.add_argument("--train-args", default="", help="extra 'bpnetz train' flags (experiments), one string")
    parser.add_argument("--train-command", default="bpnetz train",
                        help="the training command (experiments: a wrapper taking 'bpnetz train' arguments)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=JSON",
                        help="override a top-level bpnet_params.json key, e.g. counts_loss='\"POISSON\"'")
    parser.add_argument("--json", type=Path, help="results JSON (default: <workdir>/bench_quality.json)")
    parser.add_argument("--filters", type=int, help="filters of the motif and dilated convolutions (simulated: 64)")
    parser.add_argument("--layers", type=int, help="dilated layers (simulated: as many as fit, up to 8)")
    parser.add_argument("--panel", action="store_true",
                        help="run the panel of differently generated experiments (PANEL) instead of one")
    parser.add_argument("--panel-size", type=int, default=8, help=f"panel experiments (8; at most {len(PANEL)})")
    parser.add_argument("--panel-half", choices=("all", "tuning", "reporting"), default="all",
                        help="run only the tuning (even) or reporting (odd) half of the panel")
    parser.add_argument("--panel-only", nargs="+", metavar="NAME", choices=[name for name, _, _ in PANEL],
                        help="run only these PANEL experiments, by name (quote names with spaces; implies --panel, "
                             "overrides --panel-size and --panel-half; each keeps its panel/NN directory): "
                             + "; ".join(f"{i:02d} {name}" for i, (name, _, _) in enumerate(PANEL)))
    args = parser.parse_args()
    if args.quick:
        args.n_peaks, args.chrom_length, args.epochs = 400, 300_000, 2
    if args.panel_only:
        args.panel = True
    return args


def main() -> int:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        exp = (args.experiment or work / "experiment").resolve()
        if args.panel:
            return run_panel(args, work.resolve())
        store = simulate_and_build(exp, args)
        bench(args, work.resolve(), exp, store, began)
        return 0


def bench(args: argparse.Namespace, work: Path, exp: Path, store: Path, began: float) -> dict[str, Any]:
    from bpnetz.config import Splits
    from bpnetz.model.contract import TrackGroups
    from bpnetz.predict import metrics as M
    from bpnetz.store.reader import StoreReader

    code_at_start = code_version()
    params_path, params, layers_note = fitted_params(exp, args.overrides, work / "bpnet_params.json",
                                                     filters=args.filters, layers=args.layers)
    models = work / "models"
    train_s = run([*shlex.split(args.train_command), "--store", str(store), "--params", str(params_path), "--splits",
                   str(exp / "splits.json"), "--output-dir", str(models), "--epochs", str(args.epochs),
                   "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--threads", str(args.threads),
                   *shlex.split(args.train_args)])
    model_dir = models / "model_split000"
    ours = json.loads((model_dir / "training.json").read_text())["summary"]
    run(["bpnetz", "predict", "--model", str(model_dir), "--store", str(store), "--output-dir",
         str(work / "predict"), "--quiet"])

    reader = StoreReader(store)
    layout = reader.layout
    groups = TrackGroups.of(layout).softmax()
    fold = Splits.load(exp / "splits.json").folds["0"]
    test, probs, logcounts = read_bpnetz_predictions(work / "predict/model_split000_predictions.h5", reader, groups)
    observed = test.observed
    results = {"bpnetz": M.compute_metrics(observed, pred_probs=probs, pred_logcounts=logcounts, task_tracks=groups)}
    spread = {"observed": float(np.std(np.log(observed.sum(axis=(1, 2)) + layout.n_tracks))),
              "bpnetz": float(np.std(logcounts[:, 0]))}
    training = {"bpnetz": {"wall_s": round(train_s, 1), "train_s": round(ours["seconds"], 1),
                           "epochs_run": ours["epochs_run"], "best_epoch": ours["best_epoch"],
                           "counts_loss_weight": params["loss_weights"][1], "counts_loss": params["counts_loss"],
                           "train_command": args.train_command, "train_args": args.train_args,
                           "overrides": args.overrides}}

    if not args.no_peer:
        syntax = params["syntax_module_params"]
        settings = {"in_window": layout.input_len, "out_window": layout.output_len, "max_jitter": layout.max_jitter,
                    "negative_ratio": float(next(iter(layout.background_ratio.values()))),
                    "n_filters": int(syntax["filters"]), "n_layers": int(syntax["num_dilation_layers"]),
                    "epochs": args.epochs, "batch_size": args.batch_size, "lr": 0.001, "early_stopping": 10,
                    "seed": args.seed, "threads": args.threads, "count_loss_weight": None}
        counts = export_peer_data(reader, fold, test, args.seed, work / "peer_data.npz", settings)
        logits, peer_lc, history, wall = run_peer(args.peer_python, work / "peer_data.npz", work / "peer")
        results["bpnet-lite"] = M.compute_metrics(observed, pred_logits=logits, pred_logcounts=peer_lc,
                                                  task_tracks=groups)
        spread["bpnet-lite"] = float(np.std(peer_lc[:, 0]))
        training["bpnet-lite"] = {"wall_s": round(wall, 1), "train_s": round(history["train_seconds"], 1),
                                  "epochs_run": history["epochs_run"], "best_epoch": history["best_epoch"],
                                  "counts_loss_weight": history["count_loss_weight"], "loci": counts,
                                  "examples_per_epoch": history["examples_per_epoch"], "settings": settings}

    oracle_probs, oracle_lc = oracle_predictions(exp, layout, test)
    results["oracle"] = M.compute_metrics(observed, pred_probs=oracle_probs, pred_logcounts=oracle_lc,
                                          task_tracks=groups)
    base_probs, base_lc = M.baseline_predictions(baseline_reference(reader, fold.train_chroms(reader.chromosomes)),
                                                 groups, len(test.rows))
    results["baseline"] = M.compute_metrics(observed, pred_probs=base_probs, pred_logcounts=base_lc,
                                            task_tracks=groups)
    results["upper bound"] = M.upper_bound(observed, groups, seed=UPPER_BOUND_SEED)

    values = {key: {name: task_value(r, key) for name, r in results.items()} for _, key in ROWS}
    extra = {"training wall time (s)": {n: f"{t['wall_s']:.0f}" for n, t in training.items()},
             "epochs run (best)": {n: f"{t['epochs_run']} ({t['best_epoch']})" for n, t in training.items()}}
    machine = {"cpus": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2)}
    layers = params["syntax_module_params"]["num_dilation_layers"]
    header = (f"{len(test.rows)} held-out peaks ({', '.join(fold.test)}); input {layout.input_len} -> output "
              f"{layout.output_len}, {layers} dilated layers x {params['syntax_module_params']['filters']} filters; "
              f"epoch budget {args.epochs}; {machine['cpus']} CPUs (load {machine['load_average_1min_at_end']})")
    table = format_table(values, extra, header)
    print(table)
    out = args.json or work / "bench_quality.json"
    payload = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "experiment": str(exp), "layers_note": layers_note, "machine": machine,
               "code": {"at_start": code_at_start, "at_end": code_version()},
               "n_test_loci": len(test.rows), "table": values, "training": training,
               "predicted_logcount_sd": spread, "counts_head": ours.get("counts_refit"),
               "summaries": {name: r.summary() for name, r in results.items()},
               "seconds": round(time.perf_counter() - began, 1)}
    write_json(out, payload)
    if layers_note:
        print(f"note: {layers_note}")
    if code_at_start != code_version() or code_at_start["modified"]:
        print(f"note: bpnetz code changed during the run or is modified: {code_at_start} -> {code_version()}")
    print(f"bench_quality: {len(results)} columns on {len(test.rows)} test peaks in "
          f"{time.perf_counter() - began:.0f} s; results in {out}")
    return payload


if __name__ == "__main__":
    raise SystemExit(main())
