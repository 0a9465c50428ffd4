"""``bpnetz demo``: the whole workflow on the built-in synthetic experiment, sized for a laptop CPU.

simulate → build → train → predict (held-out chromosome) → DeepLIFT-SHAP → tfmodisco-lite (→ FiNeMo hits when
installed), then a summary: the test metrics beside the position-independent baseline and the replicate-like
upper bound, and for each planted motif the best-matching discovered motif with its similarity.

The demo model is the reference architecture made smaller (shorter input, fewer dilated layers) so that the
whole run takes minutes on two CPU cores; everything else (loss weights from the reference formula, early
stopping, learning-rate schedule) is bpnetz's defaults.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bpnetz.errors import InputError


@dataclass(frozen=True)
class DemoSize:
    """The knobs that set the demo's run time."""

    n_peaks: int = 1500
    chrom_length: int = 600_000
    input_len: int = 1000
    output_len: int = 500
    max_jitter: int = 64
    filters: int = 32
    dilation_layers: int = 6
    epochs: int = 16
    shap_loci: int = 800
    num_shuffles: int = 10

    @classmethod
    def quick(cls) -> DemoSize:
        """A smoke-test size: seconds, not minutes (too small for modisco to find every motif)."""
        return cls(n_peaks=300, chrom_length=150_000, input_len=600, output_len=300, max_jitter=32, filters=16,
                   dilation_layers=4, epochs=2, shap_loci=200, num_shuffles=4)


@dataclass
class DemoResult:
    out: Path
    seconds: dict[str, float] = field(default_factory=dict)
    metrics_table: str = ""
    motif_table: str = ""
    hits: str = ""

    def format(self) -> str:
        steps = ", ".join(f"{name} {sec:.0f} s" for name, sec in self.seconds.items())
        lines = ["", "=" * 100, f"bpnetz demo finished in {sum(self.seconds.values()):.0f} s ({steps})",
                 f"everything is in {self.out}", "", "held-out test chromosome:", self.metrics_table, "",
                 "planted motifs vs motifs discovered by tfmodisco-lite (counts scores):", self.motif_table]
        if self.hits:
            lines += ["", self.hits]
        return "\n".join(lines)


def _params(experiment: Path, size: DemoSize) -> Path:
    """The simulated bpnet_params.json (loss weights from the reference formula) with the demo's model size."""
    params = json.loads((experiment / "bpnet_params.json").read_text())
    params["motif_module_params"]["filters"] = [size.filters]
    params["syntax_module_params"].update(filters=size.filters, num_dilation_layers=size.dilation_layers)
    path = experiment / "demo_params.json"
    path.write_text(json.dumps(params, indent=2))
    return path


class _Steps:
    """Times each step and prints a banner before it."""

    def __init__(self, result: DemoResult):
        self.result = result

    def __call__(self, name: str, fn, *args, **kwargs):
        print(f"\n--- {name} " + "-" * (95 - len(name)), flush=True)
        started = time.perf_counter()
        value = fn(*args, **kwargs)
        self.result.seconds[name] = time.perf_counter() - started
        return value


def run_demo(out: str | Path, *, size: DemoSize | None = None, seed: int = 0, hits: bool = True) -> DemoResult:
    """Run the whole workflow into ``out`` (must be new or empty) and return its summary."""
    from bpnetz.build.builder import build_store
    from bpnetz.build.options import BuildOptions
    from bpnetz.config import BpnetParams, Splits
    from bpnetz.genome.motif import read_meme_motifs
    from bpnetz.model.options import TrainOptions
    from bpnetz.model.train import train
    from bpnetz.motifs.compare import format_matches, match_motifs
    from bpnetz.motifs.modisco import load_patterns, run_modisco
    from bpnetz.predict.options import PredictOptions
    from bpnetz.predict.predict import predict
    from bpnetz.shap.contributions import contribution_scores
    from bpnetz.shap.options import ShapOptions
    from bpnetz.simulate.experiment import simulate

    size = size or DemoSize()
    out = Path(out).absolute()
    if out.exists() and any(out.iterdir()):
        raise InputError("the demo directory exists and is not empty.", path=out, fix="Pass a new directory.")
    result = DemoResult(out)
    step = _Steps(result)
    experiment = out / "experiment"
    step("simulate", simulate, experiment, seed=seed, n_peaks=size.n_peaks, chrom_length=size.chrom_length,
         input_len=size.input_len, output_len=size.output_len, max_jitter=size.max_jitter)
    store = out / "store.zarr"
    cwd = Path.cwd()
    os.chdir(experiment)  # input_data.json's paths are relative to the experiment, as in the reference
    try:
        step("build", build_store, "input_data.json", "genome.fa", "chrom.sizes", store,
             BuildOptions(input_len=size.input_len, output_len=size.output_len, max_jitter=size.max_jitter))
    finally:
        os.chdir(cwd)
    params = BpnetParams.load(_params(experiment, size))
    model_dirs = step("train", train, store, params, Splits.load(experiment / "splits.json"), out / "models",
                      TrainOptions(epochs=size.epochs, seed=seed, verbose=2))
    prediction = step("predict", predict, model_dirs[0], out / "predictions",
                      PredictOptions(store=store, split="test", chrom_sizes=experiment / "chrom.sizes",
                                     generate_bigwigs=True))
    result.metrics_table = prediction.table or ""
    shap_dir = out / "shap"
    step("shap", contribution_scores, model_dirs[0], shap_dir,
         ShapOptions(store=store, sample=size.shap_loci, num_shuffles=size.num_shuffles, generate_bigwigs=True,
                     chrom_sizes=experiment / "chrom.sizes"))
    modisco_dir = out / "modisco"
    step("modisco", run_modisco, shap_dir / "counts_scores.h5", modisco_dir, window=min(400, size.input_len))
    planted = read_meme_motifs(experiment / "truth" / "motifs.meme")
    result.motif_table = format_matches(match_motifs(load_patterns(modisco_dir / "modisco_results.h5"), planted))
    if hits:
        result.hits = _hits(step, modisco_dir, shap_dir, out / "hits")
    return result


def _hits(step: _Steps, modisco_dir: Path, shap_dir: Path, out: Path) -> str:
    """FiNeMo hit calling when it is installed (the optional 'hits' extra); a line saying so otherwise."""
    import importlib.util

    if importlib.util.find_spec("finemo") is None:
        return "hit calling skipped: FiNeMo is not installed (pip install 'bpnetz[hits]')."
    from bpnetz.motifs.hits import call_hits

    summary = step("hits", call_hits, modisco_dir / "modisco_results.h5", shap_dir / "counts_scores.h5", out)
    return "FiNeMo hits of the discovered motifs:\n" + summary.format()
