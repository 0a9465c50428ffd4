"""``bpnetz ism`` on the trained tiny model: its deltas equal direct model calls, its bigWigs hold the h5's
per-base scores, and at planted sites it agrees with DeepLIFT-SHAP (sign at each site's strongest base, rank
correlation over the mutated spans)."""

from __future__ import annotations

import h5py
import numpy as np
import pyBigWig
import pyfaidx
from scipy.stats import spearmanr

from bpnetz.cli import run_guarded
from bpnetz.cli.ism import main as ism_main
from tests.insilico.helpers import direct_bias, direct_logcount, held_out_sites, onehot_text
from tests.insilico.trained import INPUT_LEN, OUTPUT_LEN

WIDTH = 40


def test_ism_matches_direct_calls_bigwigs_and_deeplift(trained, tmp_path):
    sites = held_out_sites(trained.experiment)[:40]
    bed = tmp_path / "sites.bed"
    bed.write_text("".join(f"{s['chrom']}\t{s['strongest']}\t{s['strongest'] + 1}\n" for s in sites)
                   + "chr1\t10\t11\nchrZ\t5\t6\n")  # a window past the chromosome start; an unknown chromosome
    argv = ["--model", str(trained.model_dir), "--regions", str(bed), "--reference-genome",
            str(trained.experiment / "genome.fa"), "--output-dir", str(tmp_path / "ism"), "--width", str(WIDTH)]
    assert run_guarded(ism_main, argv) == 0
    skipped = (tmp_path / "ism/skipped.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[-1] for line in skipped] == ["input window crosses a chromosome end",
                                                           "unknown chromosome"]
    with h5py.File(tmp_path / "ism/ism.h5") as f:
        start, delta = f["start"][:], f["counts/delta"][:]
        projected, hyp = f["counts/projected"][:], f["counts/hyp"][:]
    assert np.allclose(hyp.mean(axis=2), 0, atol=1e-5)
    half = WIDTH // 2
    assert np.array_equal(start, [s["strongest"] - half for s in sites])

    from bpnetz.model.registry import load_model

    model = load_model(trained.model_dir, compile=False)
    fasta = pyfaidx.Fasta(str(trained.experiment / "genome.fa"))
    windows = [str(fasta["chr1"][s["strongest"] - INPUT_LEN // 2:s["strongest"] + INPUT_LEN // 2]).upper()
               for s in sites]
    ref = windows[0]
    j, base = 7, "ACGT"[("ACGT".index(ref[INPUT_LEN // 2 - half + 7]) + 2) % 4]
    mutant = ref[:INPUT_LEN // 2 - half + j] + base + ref[INPUT_LEN // 2 - half + j + 1:]
    out_start = sites[0]["strongest"] - OUTPUT_LEN // 2
    logs = direct_logcount(model, trained.experiment, [ref, mutant], "chr1", out_start, OUTPUT_LEN, rc_average=False)
    assert np.isclose(delta[0, j, "ACGT".index(base)], logs[1] - logs[0], atol=2e-4)

    with pyBigWig.open(str(tmp_path / "ism/ism_counts.bw")) as bw:
        values = np.array(bw.values("chr1", int(start[0]), int(start[0]) + WIDTH))
    assert np.allclose(values, projected[0], atol=1e-5)

    from bpnetz.shap.deeplift import DeepLiftExplainer

    onehot = np.stack([onehot_text(w) for w in windows])
    bias = [direct_bias(trained.experiment, "chr1", s["strongest"] - OUTPUT_LEN // 2, OUTPUT_LEN) for s in sites]
    bias = {k: np.concatenate([b[k] for b in bias]) for k in bias[0]}
    explainer = DeepLiftExplainer(model, task=0)
    shap = explainer.explain(onehot, bias, targets=("counts",), num_shuffles=10, progress=False)["counts"][1]
    shap = shap[:, INPUT_LEN // 2 - half:INPUT_LEN // 2 + half].sum(axis=2)
    rho = spearmanr(shap.ravel(), projected.ravel()).statistic
    at_site = projected[:, half], shap[:, half]  # each window is centred on a site's strongest base
    agree = np.mean(np.sign(at_site[0]) == np.sign(at_site[1]))
    print(f"ISM vs DeepLIFT-SHAP (counts): Spearman {rho:.3f} over {projected.size} bases; sign agreement at the "
          f"sites' strongest bases {agree:.2f} ({len(sites)} sites)")
    assert agree >= 0.85
    assert rho >= 0.5
