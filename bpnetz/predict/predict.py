"""The prediction pipeline behind ``bpnetz predict`` and ``bpnet-predict``: a trained model directory
(:mod:`bpnetz.model.contract`) and a store in; predictions, metrics, pictures and bigWigs out. This module is
the orchestration; each concern has its module:

- :mod:`bpnetz.predict.inference`: batches through the model, reverse-complement averaging, the evaluated window;
- :mod:`bpnetz.predict.evaluation`: the metrics beside a baseline and an upper bound;
- :mod:`bpnetz.predict.peaks` and :mod:`bpnetz.predict.regions`: the outputs of each mode;
- :mod:`bpnetz.build.controls`: bias inputs of arbitrary windows.

**Peaks** (default): the loci of one subset of the store — the model's split (``test``, ``val``, ``train``) read
from the model directory's ``splits.json``, every chromosome (``all``), or explicit chromosomes — are streamed
through the store stream without jitter or shuffling, in store (genome) order, peaks only unless backgrounds
are asked for. Each batch is predicted (optionally averaged with its reverse complement, mapped back), and the
predictions are compared with the observed counts (:mod:`bpnetz.predict.metrics`) beside two reference points:
a position-independent baseline and the binomial-thinning upper bound.

**Regions** (``regions=`` BED or ``tile=`` chromosomes): windows tiling the regions are read from the FASTA and
predicted; nothing is observed there, so only bigWigs of predicted counts are written. Bias inputs for those
windows are read from the control bigWigs named in the store layout, or are zero (with a notice).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.config import Split, check_split_chroms
from bpnetz.errors import InputError, notice
from bpnetz.files.atomic import output_directory, relocated
from bpnetz.files.remote import is_url
from bpnetz.genome.bigwig import write_track_bigwigs
from bpnetz.genome.intervals import chromosome_sizes
from bpnetz.model.contract import SPLITS_FILE, STORE_RECORD, ModelDir, ModelShape, TrackGroups, check_model_matches
from bpnetz.predict import metrics as M
from bpnetz.predict.evaluation import UPPER_BOUND_SEED, baseline_reference, evaluate
from bpnetz.predict.inference import Window, model_predict_fn, predict_loci, window_of
from bpnetz.predict.options import SUBSETS, PredictOptions
from bpnetz.predict.peaks import bigwig_template, write_peak_outputs
from bpnetz.predict.regions import chromosome_regions, predict_regions, read_regions_bed, tile_regions
from bpnetz.store import schema
from bpnetz.store.schema import StoreLayout

#: environment variable naming the directory of stores built from raw inputs (``--input-data …``).
STORE_CACHE_ENV = "BPNETZ_STORE_CACHE"


def default_store_cache(model_dir: ModelDir) -> Path:
    """Where stores built from raw inputs are kept: ``$BPNETZ_STORE_CACHE``; else the folder of the model's own
    training store when that is a cached ``store-<key>.zarr`` (so the same inputs find it again); else
    ``.bpnetz-stores`` beside the model directory."""
    if os.environ.get(STORE_CACHE_ENV):
        return Path(os.environ[STORE_CACHE_ENV])
    recorded = model_dir.recorded_store()
    if isinstance(recorded, Path) and recorded.name.startswith("store-") and recorded.parent.is_dir():
        return recorded.parent
    return model_dir.path.parent / ".bpnetz-stores"


def _recorded_build_args(model_dir: ModelDir) -> dict[str, Any]:
    """max_jitter, chroms and blacklist the training store was built with (so a rebuild hits the same cache)."""
    recorded = model_dir.recorded_store()
    if recorded is None or (isinstance(recorded, Path) and not recorded.exists()):
        return {}
    try:
        build = schema.metadata(schema.open_group(recorded)).get("configs", {}).get("build", {})
    except InputError:
        return {}
    return {k: build[k] for k in ("max_jitter", "chroms", "blacklist") if build.get(k) is not None}


def resolve_store(model_dir: ModelDir, store: str | Path | None, *, input_data: str | Path | None,
                  reference_genome: str | Path | None, chrom_sizes: str | Path | None, input_len: int,
                  output_len: int, cache_dir: str | Path | None, progress: bool) -> Path:
    """The store to read: ``store``; else the cached store of raw inputs (built first when absent); else the
    model's training store named in ``store.json``."""
    if store is not None:
        return store if is_url(store) else Path(store)
    if input_data is not None:
        missing = [flag for flag, value in (("--reference-genome", reference_genome),
                                            ("--chrom-sizes", chrom_sizes)) if value is None]
        if missing:
            raise InputError(f"--input-data needs {' and '.join(missing)} to build (or find) the store.",
                             fix="Pass them, or pass --store.")
        from bpnetz.build.builder import find_or_build_store
        from bpnetz.build.options import BuildOptions

        build = BuildOptions(input_len=input_len, output_len=output_len, progress=progress,
                             **{"max_jitter": 0, **_recorded_build_args(model_dir)})
        return find_or_build_store(cache_dir or default_store_cache(model_dir), input_data, reference_genome,
                                   chrom_sizes, build)
    recorded = model_dir.recorded_store()
    if recorded is None:
        raise InputError(f"no store given and the model directory has no {STORE_RECORD} naming one.",
                         path=model_dir.path, fix="Pass --store, or --input-data, --reference-genome and "
                                                  "--chrom-sizes.")
    return recorded


# ------------------------------------------------------------------------------------------ the pipeline


@dataclass
class PredictSummary:
    """What a prediction run produced."""

    output_dir: Path
    model_name: str
    mode: str  # "peaks" or "regions"
    n_examples: int
    files: list[Path]
    seconds: float
    table: str | None = None
    baseline_source: str | None = None
    results: dict[str, M.MetricsResult] = field(default_factory=dict, repr=False)

    def format(self) -> str:
        what = "loci" if self.mode == "peaks" else "windows"
        return (f"predicted {self.n_examples} {what} with {self.model_name} in {self.seconds:.1f} s; "
                f"{len(self.files)} files in {self.output_dir}")


def _subset_chroms(reader: Any, split: Split | None, subset: str, chroms: Sequence[str] | None) -> list[str]:
    """Chromosomes to predict: explicit ``chroms`` (those the store lacks are named in a notice), else the
    model's split subset, else every chromosome of the store."""
    store_chroms = reader.chromosomes
    if chroms is not None:
        absent = [c for c in chroms if c not in store_chroms]
        if len(absent) == len(chroms):
            raise InputError(f"none of the chromosomes {', '.join(list(chroms)[:6])} holds a locus of the store "
                             f"(its loci are on {', '.join(store_chroms[:10])}).", path=reader.path,
                             fix="Check --chroms against the store's chromosome names.")
        if absent:
            notice(f"the store has no loci on {', '.join(absent[:10])}.")
        return [c for c in chroms if c in store_chroms]
    if subset == "all":
        return store_chroms
    if split is None:
        raise InputError(f"--split {subset} needs the model's {SPLITS_FILE}, which its directory lacks.",
                         fix="Pass --chroms, or --split all.")
    return split.chroms(subset, store_chroms)


def read_test_indices(test_indices: str | Path | Sequence[int] | None, n: int) -> np.ndarray | None:
    """0-based positions into the evaluated loci (store order): a list, or a file of one integer per line."""
    if test_indices is None:
        return None
    if isinstance(test_indices, (str, Path)):
        path = Path(test_indices)
        if not path.is_file():
            raise InputError("the test indices file does not exist.", path=path)
        values = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    values.append(int(line.strip()))
                except ValueError:
                    raise InputError(f"line {number} is not an integer: {line.strip()!r}.", path=path,
                                     fix="Write one 0-based index per line.") from None
        test_indices = values
    index = np.unique(np.asarray(test_indices, dtype=np.int64))
    if len(index) == 0 or index.min() < 0 or index.max() >= n:
        raise InputError(f"test indices must be 0-based positions among the {n} evaluated loci "
                         f"(got {len(index)} indices from {index.min(initial=0)} to {index.max(initial=0)}).",
                         fix="Index the loci of the selected chromosomes in genome order.")
    return index


@dataclass
class PredictionRun:
    """The model and the settings shared by both modes."""

    model_dir: ModelDir
    model: Any
    shape: ModelShape
    out_dir: Path
    window: Window
    batch_size: int
    reverse_complement_average: bool
    set_bias_as_zero: bool
    orig_multi_loss: bool | None
    progress: bool

    def open_store(self, store: str | Path | None, store_args: dict[str, Any]) -> Any:
        """The store reader, checked against the model; a notice when it is not the model's training store."""
        from bpnetz.store.reader import StoreReader

        path = resolve_store(self.model_dir, store, input_len=self.shape.input_len,
                             output_len=self.shape.output_len, progress=self.progress, **store_args)
        reader = StoreReader(path)
        self.per_track(reader.layout)
        trained_on = self.model_dir.store_record.get("checksum")
        if trained_on and reader.meta.get("checksum") and trained_on != reader.meta["checksum"]:
            notice(f"{path} is not the store the model was trained on (checksum {reader.meta['checksum']} vs "
                   f"{trained_on}); its windows match the model, so prediction goes on.")
        return reader

    def per_track(self, layout: StoreLayout) -> bool:
        """Whether the model predicts one log count per track (orig_multi_loss); raises when it cannot read
        windows of this layout."""
        return check_model_matches(self.shape, layout, self.model_dir.path, self.orig_multi_loss)

    def groups(self, layout: StoreLayout) -> tuple[list[list[int]], list[str]]:
        """Softmax groups (per task, or per track with per-track log counts) and their names."""
        groups = TrackGroups.of(layout, per_track=self.per_track(layout))
        return groups.softmax(), groups.names(layout)

    def settings(self) -> dict[str, Any]:
        return {"model": str(self.model_dir.path), "reverse_complement_average": self.reverse_complement_average,
                "output_window_size": self.window.size, "set_bias_as_zero": self.set_bias_as_zero}


def predict(model_dir: str | Path, output_dir: str | Path, options: PredictOptions | None = None) -> PredictSummary:
    """Predict with a trained model into ``output_dir``; see the module docstring and
    :class:`~bpnetz.predict.options.PredictOptions` (None: its defaults). Returns what was written."""
    began = time.perf_counter()
    o = options or PredictOptions()
    if o.split not in SUBSETS:
        raise InputError(f"--split must be one of {', '.join(SUBSETS)}, got {o.split!r}.")
    if o.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {o.batch_size}.")
    if o.regions is not None and o.tile is not None:
        raise InputError("give either --regions or --tile, not both.")
    mdir = ModelDir.open(model_dir)
    from bpnetz.model.registry import load_model

    model = load_model(mdir.model_file, compile=False)
    shape = ModelShape.of(model)
    expected = o.expected_lengths
    if expected is not None and tuple(expected) != (shape.input_len, shape.output_len):
        raise InputError(f"--input-seq-len {expected[0]} and --output-len {expected[1]} do not match "
                         f"the model, which takes {shape.input_len} bases and predicts {shape.output_len}.",
                         path=mdir.model_file, fix=f"Pass --input-seq-len {shape.input_len} --output-len "
                                                   f"{shape.output_len}.")
    store_args = {"input_data": o.input_data, "reference_genome": o.reference_genome, "chrom_sizes": o.chrom_sizes,
                  "cache_dir": o.cache_dir}
    final = Path(output_dir)
    with output_directory(final, what="prediction output directory") as tmp:  # all files of one run, or none
        run = PredictionRun(model_dir=mdir, model=model, shape=shape, out_dir=tmp,
                            window=window_of(shape.output_len, o.output_window_size), batch_size=o.batch_size,
                            reverse_complement_average=o.reverse_complement_average,
                            set_bias_as_zero=o.set_bias_as_zero, orig_multi_loss=o.orig_multi_loss,
                            progress=o.progress)
        if o.regions is not None or o.tile is not None:
            tile = [o.tile] if isinstance(o.tile, str) else o.tile
            summary = _predict_regions_run(run, o.store, store_args, o.regions, tile)
        else:
            summary = _predict_peaks_run(run, o.store, store_args, o.split, o.chroms, o.test_indices, o.peaks_only,
                                         o.generate_bigwigs)
    summary.output_dir, summary.files = final, [relocated(f, tmp, final) for f in summary.files]
    summary.seconds = time.perf_counter() - began
    return summary


def _predict_peaks_run(run: PredictionRun, store: str | Path | None, store_args: dict[str, Any], split: str,
                       chroms: Sequence[str] | None, test_indices: Any, peaks_only: bool,
                       generate_bigwigs: bool) -> PredictSummary:
    from bpnetz.store.selection import LocusSelection
    from bpnetz.store.stream import LocusStream

    reader = run.open_store(store, store_args)
    layout, mdir, window = reader.layout, run.model_dir, run.window
    groups, group_names = run.groups(layout)
    per_track = run.per_track(layout)
    check_split_chroms({mdir.name: None if chroms else mdir.split}, reader.chromosomes, path=mdir.path / SPLITS_FILE,
                       required=(split,), optional=())
    chosen = _subset_chroms(reader, mdir.split, split, chroms)
    backgrounds = "none" if peaks_only else "all"
    keep = None if test_indices is None else read_test_indices(
        test_indices, LocusSelection(reader, chosen, backgrounds=backgrounds, redraw=False, seed=0).n_examples)
    stream = LocusStream(reader, None, "all", batch_size=run.batch_size, all_chroms=chosen, jitter=False,
                         shuffle=False, reverse_complement="none", backgrounds=backgrounds,
                         orig_multi_loss=per_track, progress=run.progress, only=keep)
    sizes = (chromosome_sizes(store_args["chrom_sizes"], reader.meta.get("genome"),
                              "--generate-predicted-profile-bigWigs") if generate_bigwigs else None)
    pred = predict_loci(stream, model_predict_fn(run.model), groups, window,
                        reverse_complement_average=run.reverse_complement_average,
                        set_bias_as_zero=run.set_bias_as_zero, progress=run.progress)
    kinds = [schema.KIND_PEAK] if peaks_only else [schema.KIND_PEAK, schema.KIND_BACKGROUND]
    reference, baseline_source = baseline_reference(reader, mdir.split, reader.chromosomes, kinds, window, pred)
    reader.check_unchanged()  # every row came from the store opened (never two stores mixed)
    results = evaluate(pred, reference, groups, [t.name for t in layout.tracks], group_names)
    settings = {**run.settings(), "store": reader.path, "split": "chroms" if chroms is not None else split,
                "chroms": chosen, "peaks_only": peaks_only, "orig_multi_loss": per_track,
                "test_indices": None if keep is None else len(keep),
                "baseline": {"source": baseline_source,
                             "definition": "every example predicted with the average observed profile shape and "
                                           "the mean observed log count of the reference loci"},
                "upper_bound": {"definition": "binomial thinning: one half of the observed counts predicts the "
                                              "other (a half-depth replicate)", "seed": UPPER_BOUND_SEED}}
    files = write_peak_outputs(run.out_dir, mdir.name, pred, results, layout, groups, group_names, window,
                               settings)
    if sizes is not None:
        files += write_track_bigwigs(bigwig_template(run.out_dir, mdir.name), sizes, pred.chrom,
                                     pred.summit - layout.output_len // 2 + window.offset, pred.counts,
                                     [t.name for t in layout.tracks])
    table = M.metrics_table({"model": results["model"], "baseline": results["baseline"],
                             "upper bound": results["upper_bound"]})
    return PredictSummary(output_dir=run.out_dir, model_name=mdir.name, mode="peaks", n_examples=len(pred.rows),
                          files=files, seconds=0.0, table=table, baseline_source=baseline_source, results=results)


def _predict_regions_run(run: PredictionRun, store: str | Path | None, store_args: dict[str, Any],
                         regions: str | Path | None, tile: Sequence[str] | None) -> PredictSummary:
    mdir, shape = run.model_dir, run.shape
    recorded = mdir.recorded_store()
    reader = None
    recorded_readable = recorded is not None and (not isinstance(recorded, Path) or recorded.exists())
    if store is not None or store_args["input_data"] is not None or recorded_readable:
        reader = run.open_store(store, store_args)
        layout = reader.layout
    else:
        layout = mdir.recorded_layout()
        if layout is None:
            raise InputError(f"regions mode needs the store layout (tracks and controls): no store given, and no "
                             f"layout in {STORE_RECORD}.", path=mdir.path, fix="Pass --store.")
    groups, _ = run.groups(layout)
    fasta = store_args["reference_genome"] or ((reader.meta.get("genome") or {}).get("path") if reader else None)
    if fasta is None:
        raise InputError("regions mode reads the sequences from the genome FASTA.", fix="Pass --reference-genome.")
    sizes = chromosome_sizes(store_args["chrom_sizes"], reader.meta.get("genome") if reader else None,
                             "regions mode")
    spans = read_regions_bed(regions) if regions is not None else chromosome_regions(list(tile or []), sizes)
    tiles = tile_regions(spans, sizes, shape.input_len, run.window.size)
    files = predict_regions(model_predict_fn(run.model), layout, tiles, fasta, sizes,
                            bigwig_template(run.out_dir, mdir.name), groups, run.window, batch_size=run.batch_size,
                            reverse_complement_average=run.reverse_complement_average,
                            set_bias_as_zero=run.set_bias_as_zero, use_bias=shape.n_bias is not None,
                            progress=run.progress)
    return PredictSummary(output_dir=run.out_dir, model_name=mdir.name, mode="regions", n_examples=len(tiles),
                          files=files, seconds=0.0)
