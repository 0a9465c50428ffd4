"""Flags map onto the option objects: parsing the required flags alone gives each object's defaults, every
flag lands on its field, and a bad value given through the Python API is an InputError."""

from __future__ import annotations

import dataclasses

import pytest

from bpnetz.build.options import BuildOptions
from bpnetz.cli import build as build_cli
from bpnetz.cli import compat
from bpnetz.cli import predict as predict_cli
from bpnetz.cli import shap as shap_cli
from bpnetz.cli import train as train_cli
from bpnetz.cli.options import from_args
from bpnetz.errors import InputError
from bpnetz.model.options import TrainOptions
from bpnetz.predict.options import PredictOptions
from bpnetz.shap.options import ShapOptions


def _predict_parser(window_required: bool = False):
    import argparse

    parser = argparse.ArgumentParser()
    predict_cli.add_prediction_arguments(parser, window_required=window_required)
    return parser


def _shap_parser():
    import argparse

    parser = argparse.ArgumentParser()
    shap_cli.add_shap_arguments(parser)
    return parser


def test_required_flags_alone_give_the_defaults():
    args = train_cli._parser().parse_args(["--store", "s", "--params", "p.json", "--splits", "s.json"])
    assert train_cli.training_options(args) == TrainOptions(params_path="p.json", splits_path="s.json")
    args = build_cli._parser().parse_args(["--input-data", "i", "--reference-genome", "g", "--chrom-sizes", "c",
                                           "--output", "o"])
    assert from_args(BuildOptions, args) == BuildOptions()
    assert predict_cli.prediction_options(_predict_parser().parse_args(["-m", "m", "-o", "o"])) == PredictOptions()
    assert from_args(ShapOptions, _shap_parser().parse_args(["-m", "m", "-o", "o"])) == ShapOptions()


def test_every_flag_lands_on_its_field():
    argv = ["--store", "s", "--params", "p.json", "--splits", "s.json", "--model-name", "m", "--folds", "1", "2",
            "--chroms", "chr1", "-e", "3", "-b", "8", "-L", "0.01", "-l", "0.001", "--early-stopping-patience", "7",
            "--early-stopping-min-delta", "0.5", "--reduce-lr-on-plateau-patience", "4", "--lr-reduction-factor",
            "0.25", "--reverse-complement-augmentation", "--no-shuffle", "--mnll-loss-sample-weight", "0.5",
            "--mnll-loss-background-sample-weight", "0.1", "--counts-loss-background-sample-weight", "0.3",
            "--orig-multi-loss", "--no-refit-counts-head",
            "--mixed-precision", "--xla", "--seed", "9", "--cache", "disk", "-t", "2", "--input-seq-len", "400",
            "--output-len", "200", "--quiet"]
    got = train_cli.training_options(train_cli._parser().parse_args(argv))
    assert got == TrainOptions(
        model_name="m", folds=["1", "2"], chroms=["chr1"], epochs=3, batch_size=8, learning_rate=0.01,
        min_learning_rate=0.001, early_stopping_patience=7, early_stopping_min_delta=0.5,
        reduce_lr_on_plateau_patience=4, lr_reduction_factor=0.25, reverse_complement="double", shuffle=False,
        mnll_loss_sample_weight=0.5, mnll_loss_background_sample_weight=0.1,
        counts_loss_background_sample_weight=0.3, orig_multi_loss=True,
        refit_counts_head=False, mixed_precision=True, xla=True, seed=9, cache="disk", threads=2, input_len=400,
        output_len=200, params_path="p.json", splits_path="s.json", verbose=0)
    argv = ["-m", "m", "-o", "o", "--store", "s", "--reference-genome", "g", "--chrom-sizes", "c", "--store-cache",
            "cache", "--split", "val", "--chroms", "chr1", "None", "--include-background", "--test-indices-file",
            "t.txt", "--batch-size", "5", "--reverse-complement-average", "--output-window-size", "10",
            "--set-bias-as-zero", "--generate-predicted-profile-bigWigs", "--orig-multi-loss", "--quiet"]
    got = predict_cli.prediction_options(_predict_parser().parse_args(argv))
    assert got == PredictOptions(store="s", reference_genome="g", chrom_sizes="c", cache_dir="cache", split="val",
                                 chroms=["chr1"], peaks_only=False, test_indices="t.txt", batch_size=5,
                                 reverse_complement_average=True, output_window_size=10, set_bias_as_zero=True,
                                 generate_bigwigs=True, orig_multi_loss=True, progress=False)
    argv = ["-m", "m", "-o", "o", "--bed-file", "b", "-g", "g", "--input-data", "i", "--chroms", "chr2", "-t", "1",
            "--sample", "5", "--seed", "3", "--presort-bed-file", "--num-shuffles", "2", "--generate-shap-bigWigs",
            "-s", "c", "--batch-size", "4", "--input-seq-len", "400", "--quiet"]
    got = from_args(ShapOptions, _shap_parser().parse_args(argv), progress=False)
    assert got == ShapOptions(bed_file="b", reference_genome="g", input_data="i", chroms=["chr2"], task=1,
                              sample=5, seed=3, presort=True, num_shuffles=2, generate_bigwigs=True,
                              chrom_sizes="c", batch_size=4, expected_input_len=400, progress=False)


def test_bpnet_train_shares_the_training_flags_and_defaults():
    args = compat._train_parser().parse_args(["-i", "i", "-g", "g", "-c", "c", "-s", "s.json"])
    assert args.max_jitter == BuildOptions().max_jitter
    options = train_cli.training_options(args, params_path="x")
    assert dataclasses.replace(options, params_path="p") == TrainOptions(params_path="p", splits_path="s.json")


@pytest.mark.parametrize("field,value", [("cache", "ram2"), ("reverse_complement", "both")])
def test_a_bad_choice_through_the_api_is_an_input_error(field, value):
    with pytest.raises(InputError, match=f"{field} '{value}' is not one of"):
        TrainOptions(**{field: value})
