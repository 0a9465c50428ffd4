"""The reference tool's tutorial (its README, sections 1–4) runs unchanged on bpnetz.

A simulated experiment with hg38's chromosome names is laid out exactly as the tutorial lays out ENCSR000EGM;
the README's commands run as written through bash — only the number of epochs (a flag) and the model size (the
JSON) are made small — and each step's files are those the next step reads. Section 4 then runs tfmodisco-lite's
own ``modisco motifs`` on the SHAP output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

HG38 = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY"]

INPUT_DATA = {"0": {
    "signal": {"source": ["ENCSR000EGM/data/plus.bw", "ENCSR000EGM/data/minus.bw"]},
    "loci": {"source": ["ENCSR000EGM/data/peaks_inliers.bed"]},
    "background_loci": {"source": ["ENCSR000EGM/data/gc_negatives.bed"], "ratio": [0.25]},
    "bias": {"source": ["ENCSR000EGM/data/control_plus.bw", "ENCSR000EGM/data/control_minus.bw"],
             "smoothing": [None, None]}}}

SPLITS = {"0": {"test": ["chr7", "chr13", "chr17", "chr19", "chr21", "chrX"], "val": ["chr10", "chr18"],
                "train": ["chr1", "chr2", "chr3", "chr4", "chr5", "chr6", "chr8", "chr9", "chr11", "chr12", "chr14",
                          "chr15", "chr16", "chr21", "chr22", "chrY"]}}

# The README's bpnet_params.json with the model made small (filters, dilated layers).
PARAMS = {"input_len": 2114, "output_profile_len": 1000,
          "motif_module_params": {"filters": [8], "kernel_sizes": [21], "padding": "valid"},
          "syntax_module_params": {"num_dilation_layers": 3, "filters": 8, "kernel_size": 3, "padding": "valid",
                                   "pre_activation_residual_unit": True},
          "profile_head_params": {"filters": 1, "kernel_size": 75, "padding": "valid"},
          "counts_head_params": {"units": [1], "dropouts": [0.0], "activations": ["linear"]},
          "profile_bias_module_params": {"kernel_sizes": [1]}, "counts_bias_module_params": {},
          "use_attribution_prior": False,
          "attribution_prior_params": {"frequency_limit": 150, "limit_softness": 0.2, "grad_smooth_sigma": 3,
                                       "profile_grad_loss_weight": 200, "counts_grad_loss_weight": 100},
          "loss_weights": [1, 42], "counts_loss": "MSE"}

# Sections 1-3 of the README, as written (only `--epochs 100` is `--epochs 2`).
README_COMMANDS = r"""
set -euo pipefail
BASE_DIR=ENCSR000EGM
DATA_DIR=$BASE_DIR/data
MODEL_DIR=$BASE_DIR/models
REFERENCE_DIR=reference
CHROM_SIZES=$REFERENCE_DIR/hg38.chrom.sizes
REFERENCE_GENOME=$REFERENCE_DIR/hg38.genome.fa
CV_SPLITS=$BASE_DIR/splits.json
INPUT_DATA=$BASE_DIR/input_data.json
MODEL_PARAMS=$BASE_DIR/bpnet_params.json

bpnet-counts-loss-weight --input-data $INPUT_DATA > counts_loss_weight.txt

mkdir $MODEL_DIR
bpnet-train \
        --input-data $INPUT_DATA \
        --output-dir $MODEL_DIR \
        --reference-genome $REFERENCE_GENOME \
        --chroms $(paste -s -d ' ' $REFERENCE_DIR/chroms.txt) \
        --chrom-sizes $CHROM_SIZES \
        --splits $CV_SPLITS \
        --model-arch-name BPNet \
        --model-arch-params-json $MODEL_PARAMS \
        --sequence-generator-name BPNet \
        --model-output-filename model \
        --input-seq-len 2114 \
        --output-len 1000 \
        --shuffle \
        --threads 10 \
        --epochs 2 \
	--batch-size 64 \
	--reverse-complement-augmentation \
	--early-stopping-patience 10 \
	--reduce-lr-on-plateau-patience 5 \
        --learning-rate 0.001

PREDICTIONS_DIR=$BASE_DIR/predictions_and_metrics
mkdir $PREDICTIONS_DIR
bpnet-predict \
        --model $MODEL_DIR/model_split000 \
        --chrom-sizes $CHROM_SIZES \
        --chroms chr7 chr13 chr17 chr19 chr21 chrX \
        --test-indices-file None \
        --reference-genome $REFERENCE_GENOME \
        --output-dir $PREDICTIONS_DIR \
        --input-data $INPUT_DATA \
        --sequence-generator-name BPNet \
        --input-seq-len 2114 \
        --output-len 1000 \
        --output-window-size 1000 \
        --batch-size 64 \
        --reverse-complement-average \
        --threads 2 \
        --generate-predicted-profile-bigWigs

bpnet-predict \
    --model $MODEL_DIR/model_split000 \
    --chrom-sizes $CHROM_SIZES \
    --chroms chr1 chr2 chrX chr3 chr4 chr5 chr6 chr7 chr10 chr8 chr14 chr9 chr11 chr13 chr12 chr15 chr16 chr17 chrY chr18 chr19 chrM \
    --test-indices-file None \
    --reference-genome $REFERENCE_GENOME \
    --output-dir $PREDICTIONS_DIR \
    --input-data $INPUT_DATA \
    --sequence-generator-name BPNet \
    --input-seq-len 2114 \
    --output-len 1000 \
    --output-window-size 1000 \
    --batch-size 64 \
    --reverse-complement-average \
    --threads 2 \
    --generate-predicted-profile-bigWigs

SHAP_DIR=$BASE_DIR/shap
mkdir $SHAP_DIR
bpnet-shap \
        --reference-genome $REFERENCE_GENOME \
        --model $MODEL_DIR/model_split000  \
        --bed-file $DATA_DIR/peaks_inliers.bed \
        --chroms chr1 \
        --output-dir $SHAP_DIR \
        --input-seq-len 2114 \
        --control-len 1000 \
        --task-id 0 \
        --input-data $INPUT_DATA \
        --generate-shap-bigWigs
"""


def lay_out_tutorial(sim: Path, root: Path) -> None:
    """The tutorial's directory layout, filled from a simulated experiment."""
    data = root / "ENCSR000EGM" / "data"
    reference = root / "reference"
    data.mkdir(parents=True)
    reference.mkdir()
    for src, dst in (("data/plus.bw", "plus.bw"), ("data/minus.bw", "minus.bw"), ("data/peaks.bed", "peaks_inliers.bed"),
                     ("data/background.bed", "gc_negatives.bed"), ("data/control_plus.bw", "control_plus.bw"),
                     ("data/control_minus.bw", "control_minus.bw")):
        shutil.copy(sim / src, data / dst)
    shutil.copy(sim / "genome.fa", reference / "hg38.genome.fa")
    shutil.copy(sim / "chrom.sizes", reference / "hg38.chrom.sizes")
    (reference / "chroms.txt").write_text("".join(f"{c}\n" for c in HG38))
    for name, content in (("input_data.json", INPUT_DATA), ("splits.json", SPLITS), ("bpnet_params.json", PARAMS)):
        (root / "ENCSR000EGM" / name).write_text(json.dumps(content, indent=4))


@pytest.fixture(scope="module")
def tutorial(make_experiment, tmp_path_factory):
    sim = make_experiment(chrom_names=HG38, chrom_length=30_000, n_peaks=170, input_len=2114, output_len=1000,
                          max_jitter=128)
    root = tmp_path_factory.mktemp("tutorial")
    lay_out_tutorial(sim, root)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run(["bash", "-c", README_COMMANDS], cwd=root, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return root, run


def test_counts_loss_weight_prints_a_number(tutorial):
    root, _ = tutorial
    assert float((root / "counts_loss_weight.txt").read_text()) > 0


def test_training_writes_the_model_directory(tutorial):
    root, run = tutorial
    model = root / "ENCSR000EGM" / "models" / "model_split000"
    assert (model / "model.keras").is_file() and (model / "history.csv").is_file()
    assert "chr21" in run.stderr  # the README's splits list chr21 in both train and test: a warning names it


def test_predictions_have_the_reference_files(tutorial):
    root, _ = tutorial
    out = root / "ENCSR000EGM" / "predictions_and_metrics"
    for name in ("model_split000_predictions.h5", "pearson.txt", "spearman.txt", "jsd.txt",
                 "model_split000_predictions_track_0.bw", "model_split000_predictions_track_1.bw"):
        assert (out / name).is_file(), name
    with h5py.File(out / "model_split000_predictions.h5") as h5:
        assert h5["predictions/pred_profs"].shape[1:] == (1000, 2)
        assert set(h5["coords/coords_chrom"].asstr()[:]) - {"chrM"} <= set(HG38)


def test_shap_then_modisco_section_4(tutorial):
    root, _ = tutorial
    shap = root / "ENCSR000EGM" / "shap"
    for name in ("counts_scores.h5", "profile_scores.h5", "counts_scores.bw", "profile_scores.bw"):
        assert (shap / name).is_file(), name
    with h5py.File(shap / "counts_scores.h5") as h5:
        assert set(h5["coords_chrom"].asstr()[:]) == {"chr1"}
        assert h5["hyp_scores"].shape[1:] == (2114, 4)
    modisco = Path(sys.executable).parent / "modisco"
    run = subprocess.run([str(modisco), "motifs", "-i", str(shap / "counts_scores.h5"), "-n", "500",
                          "-o", str(root / "modisco_results.h5")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert h5py.is_hdf5(root / "modisco_results.h5")
