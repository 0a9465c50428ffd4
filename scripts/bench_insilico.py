#!/usr/bin/env python
"""In-silico experiments on a trained model of a simulated experiment: speed and agreement with the truth.

1. ``bpnetz simulate`` an experiment, build its store and train one model with the held-out chromosome chr1
   (demo size by default: 6 × 600 kb, 1,500 peaks, 1000/500 bp, 32 filters, 6 dilated layers, 16 epochs; the
   tests' size with ``--quick``), or reuse one with ``--experiment DIR --model DIR``.
2. variants: for every bound planted site on chr1 (truth/sites.tsv, affinity ≥ 0.3, inside a peak) the SNV of its
   strongest base to the motif's least likely base, and an SNV at a random position of the same peak ≥ 10 bp
   from every site; AUROC of |log-count change| (sites vs random), the share of site SNVs that lower the counts,
   and variants/s (both alleles, reverse-complement averaged, controls from the bigWigs).
3. ISM of ``--ism-sites`` site windows (``--ism-width`` bases centred on each site's strongest base): positions/s,
   and against DeepLIFT-SHAP (20 shuffles) on the same windows: Spearman over all mutated bases and the sign
   agreement at the strongest bases.
4. syntax: GATA- and AP-1-like consensus, 32 backgrounds: the spacing of the largest cooperativity excess (the
   simulator's cooperative boost falls linearly from the closest spacing to zero at 50 bp).
5. ``--spacings 12,24,35``: instead of 2–4, for each planted spacing a simulation with ``--cooperative-spacing``
   (same size, its own model) and the syntax experiment of 4: the spacing of the largest excess per orientation
   against the planted one (issue 15: the curve peaks at the simulator's cooperative spacing).

    python scripts/bench_insilico.py [--quick] [--workdir DIR] [--experiment DIR --model DIR] [--json out.json]
    python scripts/bench_insilico.py --spacings 12,24,35 [--quick] [--workdir DIR]

Figures on a shared CPU vary with load; the rates are printed with the process's CPU seconds too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/insilico/helpers.py: truth sites and direct reads


def train_model(workdir: Path, quick: bool, epochs: int | None, variation=None) -> tuple[Path, Path]:
    """Simulate (with the knobs of ``variation``), build and train (held-out chr1); returns (experiment, model
    directory)."""
    from bpnetz.build.builder import build_store
    from bpnetz.build.options import BuildOptions
    from bpnetz.config import BpnetParams, Split, Splits
    from bpnetz.demo import DemoSize
    from bpnetz.model.options import TrainOptions
    from bpnetz.model.train import train
    from bpnetz.simulate.experiment import simulate

    size = DemoSize()
    if quick:
        sim = {"n_chroms": 4, "chrom_length": 150_000, "n_peaks": 600, "input_len": 400, "output_len": 200,
               "max_jitter": 16, "seed": 3}
    else:
        sim = {"n_chroms": 6, "chrom_length": size.chrom_length, "n_peaks": size.n_peaks,
               "input_len": size.input_len, "output_len": size.output_len, "max_jitter": size.max_jitter, "seed": 0}
    filters, layers, n_epochs = (32, 3, 10) if quick else (size.filters, size.dilation_layers, size.epochs)
    experiment = workdir / "experiment"
    simulate(experiment, progress=False, variation=variation, **sim)
    cwd = Path.cwd()
    os.chdir(experiment)
    try:
        build_store("input_data.json", experiment / "genome.fa", experiment / "chrom.sizes", workdir / "store.zarr",
                    BuildOptions(input_len=sim["input_len"], output_len=sim["output_len"],
                                 max_jitter=sim["max_jitter"], progress=False))
    finally:
        os.chdir(cwd)
    raw = json.loads((experiment / "bpnet_params.json").read_text())
    raw["motif_module_params"]["filters"] = [filters]
    raw["syntax_module_params"].update(filters=filters, num_dilation_layers=layers)
    chroms = [f"chr{i}" for i in range(2, sim["n_chroms"] + 1)]
    split = Splits(folds={"0": Split(val=["chr1"], test=[], train=chroms)})
    [model_dir] = train(workdir / "store.zarr", BpnetParams.model_validate(raw), split, workdir / "models",
                        TrainOptions(epochs=epochs or n_epochs, seed=1, verbose=2))
    return experiment, model_dir


def bench_variants(session, experiment: Path, workdir: Path) -> dict:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from bpnetz.insilico.variants import run_variants
    from tests.insilico.helpers import site_and_random_variants

    variants = site_and_random_variants(experiment, workdir / "variants.tsv")
    cpu = time.process_time()
    summary = run_variants(session, variants, experiment / "genome.fa", workdir / "variants", plot_top=3)
    cpu = time.process_time() - cpu
    table = pd.read_csv(workdir / "variants/variants.tsv", sep="\t")
    table = table[table.status == "ok"]
    site = table.id.str.startswith("site")
    logfc = table.filter(like="_logfc").iloc[:, 0]
    return {"n_sites": int(site.sum()), "n_random": int((~site).sum()),
            "auroc_abs_logfc": float(roc_auc_score(site, logfc.abs())),
            "site_share_decrease": float((logfc[site] < 0).mean()),
            "variants_per_s": summary.n_scored / summary.predict_seconds,
            "variants_per_cpu_s": summary.n_scored / cpu}


def bench_ism(session, experiment: Path, workdir: Path, n_sites: int, width: int) -> dict:
    import h5py
    from scipy.stats import spearmanr

    from bpnetz.genome.sequence import one_hot
    from bpnetz.insilico.ism import ism_regions, run_ism
    from bpnetz.shap.deeplift import DeepLiftExplainer
    from tests.insilico.helpers import held_out_sites

    sites = held_out_sites(experiment)[:n_sites]
    bed = workdir / "ism_sites.bed"
    bed.write_text("".join(f"{s['chrom']}\t{s['strongest']}\t{s['strongest'] + 1}\n" for s in sites))
    cpu = time.process_time()
    summary = run_ism(session, bed, experiment / "genome.fa", workdir / "ism", width=width)
    cpu = time.process_time() - cpu
    with h5py.File(workdir / "ism/ism.h5") as f:
        projected = f["counts/projected"][:]
    regions = ism_regions(bed, experiment / "genome.fa", session.input_len, width)
    bias = session.bias(regions.chrom, regions.in_start + session.input_len // 2 - session.output_len // 2)
    explainer = DeepLiftExplainer(session.model, 0, session.layout, session.per_track_counts)
    shap = explainer.explain(one_hot(regions.codes), bias or None, targets=("counts",), num_shuffles=20,
                             progress=False)["counts"][1].sum(axis=2)
    lo = session.input_len // 2 - width // 2
    shap = shap[:, lo:lo + width]
    centre = width // 2
    return {"n_sites": len(regions.chrom), "width": width,
            "positions_per_s": summary.positions / summary.seconds, "positions_per_cpu_s": summary.positions / cpu,
            "spearman_vs_deeplift": float(spearmanr(shap.ravel(), projected.ravel()).statistic),
            "sign_agreement_strongest_base": float(np.mean(np.sign(shap[:, centre]) == np.sign(projected[:, centre])))}


def bench_syntax(session, experiment: Path, workdir: Path, max_spacing: int = 150) -> dict:
    import pandas as pd

    from bpnetz.insilico.syntax import run_syntax

    meme = experiment / "truth/motifs.meme"
    run_syntax(session, [f"{meme}:gata", f"{meme}:ap1"], experiment / "data/peaks.bed", experiment / "genome.fa",
               workdir / "syntax", n_backgrounds=32, max_spacing=max_spacing)
    table = pd.read_csv(workdir / "syntax/spacing.tsv", sep="\t")
    table = table[table.task == table.task.iloc[0]]
    return {f"peak_spacing_{o}": int(c.spacing[c.excess_mean.idxmax()]) for o, c in table.groupby("orientation")} | {
        f"peak_excess_{o}": float(c.excess_mean.max()) for o, c in table.groupby("orientation")}


def bench_spacings(workdir: Path, spacings: list[int], quick: bool, epochs: int | None) -> dict:
    """Per planted cooperative spacing: train on a simulation with it, then the syntax experiment's peaks."""
    from bpnetz.insilico.session import open_session
    from bpnetz.simulate.variation import Variation

    out = {}
    for spacing in spacings:
        started = time.perf_counter()
        folder = workdir / f"spacing{spacing}"
        experiment, model_dir = train_model(folder, quick, epochs, Variation(cooperative_spacing=spacing))
        session = open_session(model_dir)
        found = bench_syntax(session, experiment, folder, max_spacing=2 * spacing + 30)
        session.close()
        out[str(spacing)] = found | {"seconds": time.perf_counter() - started}
        print(json.dumps({spacing: out[str(spacing)]}), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the tests' size (minutes less)")
    parser.add_argument("--workdir", help="keep everything here (default: a temporary folder)")
    parser.add_argument("--experiment", help="a simulated experiment already trained on (with --model)")
    parser.add_argument("--model", help="model directory trained with chr1 held out")
    parser.add_argument("--epochs", type=int, help="training epochs (default 16, --quick 10)")
    parser.add_argument("--ism-sites", type=int, default=100)
    parser.add_argument("--ism-width", type=int, default=40)
    parser.add_argument("--spacings", help="comma-separated planted cooperative spacings (bp): only the spacing "
                                           "recovery of step 5")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    from bpnetz.insilico.session import open_session

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_insilico_"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    if args.spacings:
        results["spacings"] = bench_spacings(workdir, [int(s) for s in args.spacings.split(",")], args.quick,
                                             args.epochs)
        print(json.dumps(results, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
        return
    if args.model:
        experiment, model_dir = Path(args.experiment), Path(args.model)
    else:
        started = time.perf_counter()
        experiment, model_dir = train_model(workdir, args.quick, args.epochs)
        results["train_seconds"] = time.perf_counter() - started
    session = open_session(model_dir)
    results["variants"] = bench_variants(session, experiment, workdir)
    print(json.dumps(results, indent=1), flush=True)
    results["ism"] = bench_ism(session, experiment, workdir, args.ism_sites, args.ism_width)
    print(json.dumps(results["ism"], indent=1), flush=True)
    results["syntax"] = bench_syntax(session, experiment, workdir)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
