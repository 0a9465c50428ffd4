"""``bpnetz variants`` on the trained tiny model: SNVs that destroy planted motif sites lower the predicted counts
and separate from SNVs at random positions of the same peaks (truth/sites.tsv); the numbers equal a direct model
call on sequences and controls read straight from the FASTA and bigWigs; edge cases are reported, not dropped."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pyfaidx
from sklearn.metrics import roc_auc_score

from bpnetz.cli import run_guarded
from bpnetz.cli.variants import main as variants_main
from tests.insilico.helpers import direct_logcount, site_and_random_variants
from tests.insilico.trained import INPUT_LEN, OUTPUT_LEN


def run_variants_cli(trained, variants, out, *extra):
    argv = ["--model", str(trained.model_dir), "--variants", str(variants), "--reference-genome",
            str(trained.experiment / "genome.fa"), "--output-dir", str(out), *extra]
    return run_guarded(variants_main, argv)


def test_destroyed_sites_lower_counts_and_separate_from_random_snvs(trained, tmp_path, capsys):
    variants = site_and_random_variants(trained.experiment, tmp_path / "v.tsv")
    assert run_variants_cli(trained, variants, tmp_path / "out", "--shap-top", "2", "--num-shuffles", "4") == 0
    assert "variants/s" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out/variants.tsv", sep="\t")
    assert len(table) == len(pd.read_csv(variants, sep="\t"))
    table = table[table.status == "ok"]
    site = table.id.str.startswith("site")
    assert site.sum() >= 40 and (~site).sum() >= 40
    auroc = roc_auc_score(site, table["0_logfc"].abs())
    print(f"AUROC |logFC| destroyed sites vs random SNVs: {auroc:.3f} ({site.sum()} sites)")
    assert auroc >= 0.8
    assert (table.loc[site, "0_logfc"] < 0).mean() >= 0.85
    with h5py.File(tmp_path / "out/variants.h5") as f:
        assert f["shap/ref_counts"].shape == (2, INPUT_LEN, 4)
        assert f["ref_counts"].shape == (len(table), OUTPUT_LEN, 2)
        top = np.argsort(-np.abs(f["logfc"][:, 0]))[:2]
        assert np.array_equal(np.sort(f["shap/rows"][:]), np.sort(top))
    assert len(list((tmp_path / "out/plots").glob("top*.png"))) == 5


def test_effects_equal_a_direct_model_call(trained, tmp_path):
    variants = site_and_random_variants(trained.experiment, tmp_path / "v.tsv")
    rows = pd.read_csv(variants, sep="\t").head(4)
    rows.to_csv(tmp_path / "few.tsv", sep="\t", index=False)
    assert run_variants_cli(trained, tmp_path / "few.tsv", tmp_path / "out", "--plot-top", "0") == 0
    table = pd.read_csv(tmp_path / "out/variants.tsv", sep="\t")
    from bpnetz.model.registry import load_model

    model = load_model(trained.model_dir, compile=False)
    fasta = pyfaidx.Fasta(str(trained.experiment / "genome.fa"))
    for _, v in table.iterrows():
        p, half = v.pos - 1, INPUT_LEN // 2
        ref = str(fasta[v.chrom][p - half:p - half + INPUT_LEN])
        alt = ref[:half] + v.alt + ref[half + 1:]
        logs = direct_logcount(model, trained.experiment, [ref, alt], v.chrom, p - OUTPUT_LEN // 2, OUTPUT_LEN)
        assert np.isclose(v["0_logfc"], logs[1] - logs[0], atol=2e-4), (v.id, v["0_logfc"], logs)


def test_edge_cases_are_reported_and_missing_controls_refused(trained, tmp_path, capsys):
    fasta = pyfaidx.Fasta(str(trained.experiment / "genome.fa"))
    ref = str(fasta["chr1"][5000:5001]).upper()
    wrong = "ACGT"[("ACGT".index(ref) + 1) % 4]
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n"
                   f"chr1\t5001\tmulti\t{ref}\t{','.join(b for b in 'ACGT' if b != ref)}\n"
                   f"chr1\t5001\tmismatch\t{wrong}\tA\nchr1\t3\tedge\t{str(fasta['chr1'][2:3]).upper()}\tA\n"
                   "chrUn\t100\tunknown\tA\tC\n")
    assert run_variants_cli(trained, vcf, tmp_path / "out") == 0
    table = pd.read_csv(tmp_path / "out/variants.tsv", sep="\t")
    assert list(table.status) == ["ok"] * 3 + ["ref_mismatch", "near_chrom_end", "unknown_chrom"]
    assert table.loc[3, "reason"].endswith(f"differs from the FASTA's {ref} at chr1:5001")
    assert table.loc[3:, "0_logfc"].isna().all() and table.loc[:2, "0_logfc"].notna().all()
    moved = tmp_path / "model"
    shutil.copytree(trained.model_dir, moved)
    record = json.loads((moved / "store.json").read_text())
    for track in record["layout"]["bias_tracks"]:
        track["source"] = str(tmp_path / "gone" / "control.bw")
    (moved / "store.json").write_text(json.dumps(record))
    moved_model = type(trained)(trained.experiment, trained.store, moved)
    capsys.readouterr()
    assert run_variants_cli(moved_model, vcf, tmp_path / "out2") == 2
    message = capsys.readouterr().err
    assert "gone/control.bw" in message and "--zero-controls" in message and "Traceback" not in message
    assert run_variants_cli(moved_model, vcf, tmp_path / "out3", "--zero-controls") == 0
