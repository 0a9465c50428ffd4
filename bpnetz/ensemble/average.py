"""Average one experiment's fold models: their prediction files or their contribution score files.

The models of one experiment (``<name>_split000``, ``_split001``, …) each write ``<model>_predictions.h5``
(``bpnetz predict``) and ``counts_scores.h5`` / ``profile_scores.h5`` (``bpnetz shap``). Averaging them gives
the ensemble's predictions and scores, in the same file layouts, so the downstream steps (bigWigs,
tfmodisco-lite) run on the result unchanged.

**Loci** are matched across files by (chromosome, start, end), whatever their order in each file; a locus listed
k times in one file matches the k-th occurrence in the others. The output follows the first file's order. A
file that lacks loci of another (or has extra ones) is an error, unless ``intersect`` keeps only the loci in
every file (the summary says how many were dropped).

**Predictions are averaged in log space**, as an ensemble that averages its models' outputs does: each model
outputs log counts and profile logits, and the ensemble averages those, not the exponentiated values.

- ``pred_logcounts``: the mean of the folds' log counts (a geometric mean of the predicted totals).
- ``pred_profs`` (predicted counts): per track, each fold's counts are split into a total (their sum over
  positions) and a shape (the counts divided by that total, a probability per position). The averaged shape is
  the geometric mean of the folds' shapes renormalised to sum to 1 — ``softmax(mean_f log p_f)``, which equals the
  softmax of the folds' averaged logits, since each ``log p_f`` is the fold's logits minus a per-fold constant.
  The averaged total is the geometric mean of the folds' totals. Counts = shape × total.

  Why not the arithmetic mean of probabilities: that is a mixture of the folds' profiles, which smears a peak that
  the folds place a few bases apart into a wider, flatter (or two-humped) profile that no model predicted; the
  renormalised geometric mean keeps the shape the folds agree on, as averaging logits does. Why per track: the file
  does not record which tracks shared a softmax (a stranded task's two strands), and the per-track split is exact
  for any grouping; it keeps ``pred_logcounts[:, t] == log Σ_pos pred_profs[:, :, t]``, which ``bpnetz predict``'s
  files satisfy. A position that one fold predicts as exactly 0 stays 0; a track whose total is 0 in any fold
  gets zero counts.
- ``true_profs`` / ``true_logcounts`` are copied from the first file after checking that every file agrees.

**Scores**: ``hyp_scores`` is the arithmetic mean of the folds' hypothetical contributions, after checking that
``input_seqs`` agree. DeepLIFT contributions are additive in the explained output, so the mean of the folds'
contributions is the contribution to the folds' mean output — the averaged log counts above, and the averaged
logits behind the averaged profile.

BigWigs (with chromosome sizes): per track, the averaged predicted counts over each locus' profile window
(``bpnetz predict``'s ``_predictions_track_{i}.bw``); for scores, the averaged projected contributions
(hypothetical × one-hot, summed over bases), as ``bpnetz shap`` writes them.

One writer per output: each entry point holds the output file's lock (:mod:`bpnetz.files.lock`); every file is
written atomically.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bpnetz.errors import InputError
from bpnetz.files.h5 import open_h5
from bpnetz.files.lock import exclusive_lock
from bpnetz.genome.bigwig import write_track_bigwigs
from bpnetz.genome.intervals import read_chrom_sizes
from bpnetz.predict.outputs import write_predictions_h5
from bpnetz.shap.scores import write_score_bigwig, write_score_h5

COORD_NAMES = ("coords_chrom", "coords_start", "coords_end")
PREDICTION_COORDS = tuple(f"coords/{name}" for name in COORD_NAMES)
PREDICTION_VALUES = tuple(f"predictions/{name}" for name in
                          ("pred_profs", "pred_logcounts", "true_profs", "true_logcounts"))
SCORE_VALUES = ("hyp_scores", "input_seqs")
#: rows read from a file at once, in the file's own order (bounds the temporaries: rows × positions × tracks
#: float64); the averaged arrays themselves are held whole, as the writers take them.
CHUNK_LOCI = 512
#: tolerance of the check that the observed values (true_*) agree across prediction files.
TRUE_RTOL, TRUE_ATOL = 1e-5, 1e-6

FIX_SAME_LOCI = ("Predict (or score) the same loci with every fold model — e.g. `bpnetz predict --split all`, or "
                 "the same --chroms or BED file — or pass --intersect to average only the loci common to all "
                 "files.")


@dataclass
class Summary:
    """What an averaging run produced."""

    kind: str  # "predictions" or "scores"
    output: Path
    inputs: list[Path]
    n_loci: int
    n_dropped: int  # loci present in some but not all files (0 unless intersecting)
    bigwigs: list[Path] = field(default_factory=list)

    def format(self) -> str:
        dropped = f"; {self.n_dropped} loci dropped (not in every file)" if self.n_dropped else ""
        bigwigs = f"; {len(self.bigwigs)} bigWig(s)" if self.bigwigs else ""
        return (f"averaged the {self.kind} of {len(self.inputs)} files over {self.n_loci} loci{dropped} -> "
                f"{self.output}{bigwigs}")


# ------------------------------------------------------------------------------------------ the averages


def log_shapes(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each locus' and track's predicted counts (N, L, T) split into log shape (N, L, T: log of counts / total,
    -inf where 0) and log total (N, T); a zero total gives an all -inf shape and a -inf total. Float64."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_total = np.log(totals)
        log_shape = np.where(totals[:, None, :] > 0, np.log(counts) - log_total[:, None, :], -np.inf)
    return log_shape, log_total


def counts_from_mean_logs(mean_log_shape: np.ndarray, mean_log_total: np.ndarray) -> np.ndarray:
    """Predicted counts (N, L, T) from the folds' mean log shape (N, L, T) and mean log total (N, T): the shape
    renormalised over positions (a softmax; 0 where -inf) times the total (0 where -inf). Float64."""
    mean_log_shape = np.asarray(mean_log_shape, dtype=np.float64)
    peak = mean_log_shape.max(axis=1, keepdims=True)
    weights = np.exp(mean_log_shape - np.where(np.isfinite(peak), peak, 0.0))
    norm = weights.sum(axis=1, keepdims=True)
    shape = np.divide(weights, norm, out=np.zeros_like(weights), where=norm > 0)
    return shape * np.exp(np.asarray(mean_log_total, dtype=np.float64))[:, None, :]


# ------------------------------------------------------------------------------------------ reading the files


@dataclass
class _FoldFile:
    """One open input file, its loci and (after matching) where its rows go in the output.

    ``rows``: the file row of each output locus, in output order; ``positions``: the output position of each file
    row, -1 for a row left out.
    """

    path: Path
    h5: object  # h5py.File
    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    rows: np.ndarray | None = None
    positions: np.ndarray | None = None

    def blocks(self, names: Sequence[str], bar: tqdm) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(output positions, {name: values}) of the kept rows, read in contiguous blocks in the file's own order
        (scattered reads would decompress every compressed h5 chunk many times)."""
        for lo in range(0, len(self.positions), CHUNK_LOCI):
            hi = min(lo + CHUNK_LOCI, len(self.positions))
            keep = self.positions[lo:hi] >= 0
            if keep.any():
                yield self.positions[lo:hi][keep], {name: self.h5[name][lo:hi][keep] for name in names}
            bar.update(1)


def _strings(dataset) -> np.ndarray:
    """A string dataset (variable- or fixed-length) as an array of Python strings."""
    values = dataset[()]
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def _kind_hint(h5, kind: str) -> str:
    """A sentence pointing at the other command when the file holds the other kind of data."""
    if kind == "predictions" and all(k in h5 for k in SCORE_VALUES):
        return " It holds contribution scores (bpnetz shap): average those with --scores."
    if kind == "scores" and "predictions" in h5:
        return " It holds predictions (bpnetz predict): average those with --predictions."
    return ""


def _open_fold_file(path: Path, kind: str, coords: Sequence[str], values: Sequence[str]) -> _FoldFile:
    """Open ``path``, check it has every dataset of its kind with one row per locus, and read its loci."""
    import h5py

    writer = "bpnetz predict" if kind == "predictions" else "bpnetz shap"
    h5 = open_h5(path, f"{kind} file", f"Pass the {kind} files written by `{writer}`.")
    try:
        missing = [k for k in (*coords, *values) if not isinstance(h5.get(k), h5py.Dataset)]
        if missing:
            raise InputError(f"not a {kind} file: missing dataset(s) {', '.join(missing)}.{_kind_hint(h5, kind)}",
                             path=path, fix=f"Pass the {kind} files written by `{writer}`.")
        try:
            chrom = _strings(h5[coords[0]])
            start = np.asarray(h5[coords[1]][()], dtype=np.int64)
            end = np.asarray(h5[coords[2]][()], dtype=np.int64)
        except (TypeError, ValueError) as err:
            raise InputError(f"unreadable coordinates ({err}).", path=path,
                             fix="coords_chrom must hold names, coords_start/coords_end integers.") from err
        n = len(chrom)
        if n == 0:
            raise InputError("the file holds no loci.", path=path, fix=f"Pass {kind} files of a non-empty run.")
        for name in (*coords[1:], *values):
            if h5[name].ndim == 0 or h5[name].shape[0] != n:
                raise InputError(f"dataset {name} has shape {h5[name].shape}, not one row for each of the {n} "
                                 f"loci of {coords[0]}.", path=path,
                                 fix=f"The file is damaged or not written by `{writer}`; rewrite it.")
    except BaseException:
        h5.close()
        raise
    return _FoldFile(path, h5, chrom, start, end)


def _open_all(paths: Sequence[str | Path], output: Path, kind: str, coords: Sequence[str],
              values: Sequence[str]) -> list[_FoldFile]:
    """Open every input (at least two, all distinct, none the output); close them all on error."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise InputError(f"averaging needs at least two {kind} files, got {len(paths)}.",
                         fix="Pass the files of every fold model (…_split000, …_split001, …).")
    resolved = [p.resolve() for p in paths]
    repeated = [str(p) for p, n in Counter(resolved).items() if n > 1]
    if repeated:
        raise InputError(f"{repeated[0]} is given more than once; it would weigh more than the other folds.",
                         fix="Pass each fold's file once.")
    if output.resolve() in resolved:
        raise InputError("the output is one of the inputs.", path=output, fix="Write the average to a new file.")
    files: list[_FoldFile] = []
    try:
        for path in paths:
            files.append(_open_fold_file(path, kind, coords, values))
        for name in values:
            want = files[0].h5[name].shape[1:]
            for f in files[1:]:
                if f.h5[name].shape[1:] != want:
                    raise InputError(f"dataset {name} has per-locus shape {f.h5[name].shape[1:]} but {want} in "
                                     f"{files[0].path}.", path=f.path,
                                     fix="Average files of one experiment written with the same settings "
                                         "(sequence length, --output-window-size, tracks).")
    except BaseException:
        _close(files)
        raise
    return files


def _close(files: Sequence[_FoldFile]) -> None:
    for f in files:
        f.h5.close()


def _locus_keys(f: _FoldFile) -> list[tuple[str, int, int, int]]:
    """(chrom, start, end, occurrence) of every row: the k-th copy of a locus matches the k-th copy elsewhere."""
    seen: Counter = Counter()
    keys = []
    for locus in zip(f.chrom.tolist(), f.start.tolist(), f.end.tolist()):
        keys.append((*locus, seen[locus]))
        seen[locus] += 1
    return keys


def _describe(key: tuple[str, int, int, int]) -> str:
    return f"{key[0]}:{key[1]}-{key[2]}"


def _match_loci(files: Sequence[_FoldFile], *, intersect: bool) -> int:
    """Set each file's ``rows`` and ``positions`` for the output loci (the first file's order, only the loci of
    every file when ``intersect``); returns the number of loci dropped."""
    keys = [_locus_keys(f) for f in files]
    index = [{k: i for i, k in enumerate(ks)} for ks in keys]
    if intersect:
        common = [k for k in keys[0] if all(k in idx for idx in index[1:])]
        dropped = len(set().union(*map(set, keys))) - len(common)
        if not common:
            raise InputError(f"no locus is in all {len(files)} files.",
                             fix="Predict (or score) the same loci with every fold model — e.g. `bpnetz predict "
                                 "--split all`, or the same --chroms or BED file.")
    else:
        common, dropped = keys[0], 0
        for f, ks, idx in zip(files[1:], keys[1:], index[1:]):
            missing = [k for k in keys[0] if k not in idx]
            extra = [k for k in ks if k not in index[0]]
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"lacks {len(missing)} of the {len(keys[0])} loci of {files[0].path} "
                                 f"(first: {_describe(missing[0])})")
                if extra:
                    parts.append(f"has {len(extra)} loci that {files[0].path} lacks (first: {_describe(extra[0])})")
                raise InputError(" and ".join(parts) + ".", path=f.path, fix=FIX_SAME_LOCI)
    for f, idx in zip(files, index):
        f.rows = np.fromiter((idx[k] for k in common), dtype=np.int64, count=len(common))
        f.positions = np.full(len(f.chrom), -1, dtype=np.int64)
        f.positions[f.rows] = np.arange(len(common))
    return dropped


def _check_agree(name: str, expected: np.ndarray, values: np.ndarray, files: Sequence[_FoldFile], f: _FoldFile,
                 positions: np.ndarray, exact: bool) -> None:
    """InputError naming ``f`` when its ``values`` of ``name`` differ from the first file's (``expected``) at the
    same output ``positions``."""
    if exact:
        same = expected == values
    else:
        same = np.isclose(values, expected, rtol=TRUE_RTOL, atol=TRUE_ATOL, equal_nan=True)
    bad = np.flatnonzero(~same.reshape(len(expected), -1).all(axis=1))
    if len(bad):
        row = files[0].rows[positions[bad[0]]]
        where = f"{files[0].chrom[row]}:{files[0].start[row]}-{files[0].end[row]}"
        raise InputError(f"{name} differs from that of {files[0].path} (first at locus {where}).",
                         path=f.path, fix="Average files computed from the same data (the same store and genome) "
                                          "and the same prediction settings.")


def _check_prediction_shapes(f: _FoldFile) -> None:
    """Profiles (N, L, T) alike for predicted and observed; log counts (N, columns)."""
    shape = {name: f.h5[f"predictions/{name}"].shape
             for name in ("pred_profs", "pred_logcounts", "true_profs", "true_logcounts")}
    if (len(shape["pred_profs"]) != 3 or shape["true_profs"] != shape["pred_profs"]
            or len(shape["pred_logcounts"]) != 2 or len(shape["true_logcounts"]) != 2):
        raise InputError(f"predictions/ datasets have shapes {shape}; profiles must be (N, L, tracks), both alike, "
                         "and log counts (N, columns).", path=f.path,
                         fix="Pass prediction files written by `bpnetz predict` or `bpnet-predict`.")


def _output_coords(files: Sequence[_FoldFile]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = files[0].rows
    return files[0].chrom[rows], files[0].start[rows], files[0].end[rows]


def _chrom_sizes(chrom_sizes: str | Path | Mapping[str, int] | None, bigwig: str | Path | None
                 ) -> dict[str, int] | None:
    """The chromosome sizes for the bigWigs (both or neither of the two must be given)."""
    if (chrom_sizes is None) != (bigwig is None):
        raise InputError("bigWigs need both the chromosome sizes and the bigWig path.",
                         fix="Pass --chrom-sizes and --bigwig together (or neither).")
    if chrom_sizes is None:
        return None
    if isinstance(chrom_sizes, Mapping):
        return {str(c): int(s) for c, s in chrom_sizes.items()}
    return read_chrom_sizes(chrom_sizes)


def track_bigwig_template(bigwig: str | Path) -> str:
    """Per-track bigWig path template: ``{i}`` in the path is the track index, else ``_track_{i}`` goes before the
    suffix (``avg.bw`` -> ``avg_track_0.bw``, …), as ``bpnetz predict`` names its tracks."""
    text = str(bigwig)
    if "{i}" in text:
        return text
    path = Path(text)
    suffix = path.suffix or ".bw"
    stem = path.name[:-len(path.suffix)] if path.suffix else path.name
    escaped = str(path.with_name(stem)).replace("{", "{{").replace("}", "}}")
    return f"{escaped}_track_{{i}}{suffix}"


def _progress(files: Sequence[_FoldFile], what: str, progress: bool) -> tqdm:
    """One bar over every block of every file."""
    total = sum(-(-len(f.positions) // CHUNK_LOCI) for f in files)
    return tqdm(total=total, desc=f"averaging {what}", unit="block", disable=not progress)


# ------------------------------------------------------------------------------------------ entry points


def average_predictions(paths: Sequence[str | Path], output: str | Path, *, intersect: bool = False,
                        chrom_sizes: str | Path | Mapping[str, int] | None = None,
                        bigwig: str | Path | None = None, progress: bool = True) -> Summary:
    """Average the fold models' ``<model>_predictions.h5`` files into ``output`` (same layout, atomic).

    With ``chrom_sizes`` (a chrom.sizes file or mapping) and ``bigwig`` (path or ``{i}`` template), also writes
    one bigWig of averaged predicted counts per track (``avg.bw`` -> ``avg_track_0.bw``, …).
    """
    with exclusive_lock(output, what="averaged output"):  # one writer of this output at a time
        return _average_predictions(paths, Path(output), intersect=intersect, chrom_sizes=chrom_sizes,
                                    bigwig=bigwig, progress=progress)


def _average_predictions(paths: Sequence[str | Path], output: Path, *, intersect: bool,
                         chrom_sizes: str | Path | Mapping[str, int] | None, bigwig: str | Path | None,
                         progress: bool) -> Summary:
    sizes = _chrom_sizes(chrom_sizes, bigwig)
    files = _open_all(paths, output, "predictions", PREDICTION_COORDS, PREDICTION_VALUES)
    try:
        _check_prediction_shapes(files[0])
        dropped = _match_loci(files, intersect=intersect)
        n, length, tracks = len(files[0].rows), *files[0].h5["predictions/pred_profs"].shape[1:]
        # sums over the folds; the log shapes' array becomes the averaged counts in place
        log_shape = np.zeros((n, length, tracks), dtype=np.float32)
        log_total = np.zeros((n, tracks))
        logcounts = np.zeros((n, files[0].h5["predictions/pred_logcounts"].shape[1]))
        true = {name: np.empty((n, *files[0].h5[f"predictions/{name}"].shape[1:]), dtype=np.float32)
                for name in ("true_profs", "true_logcounts")}
        with _progress(files, "predictions", progress) as bar:
            for k, f in enumerate(files):
                for pos, block in f.blocks(PREDICTION_VALUES, bar):
                    counts = block["predictions/pred_profs"]
                    if not (np.isfinite(counts).all() and (counts >= 0).all()):
                        raise InputError("predictions/pred_profs holds negative or non-finite counts.",
                                         path=f.path, fix="Predicted counts are non-negative; rewrite the file "
                                                          "with `bpnetz predict`.")
                    fold_shape, fold_total = log_shapes(counts)
                    log_shape[pos] += fold_shape
                    log_total[pos] += fold_total
                    logcounts[pos] += block["predictions/pred_logcounts"]
                    for name, values in true.items():
                        if k == 0:
                            values[pos] = block[f"predictions/{name}"]
                        else:
                            _check_agree(name, values[pos], block[f"predictions/{name}"], files, f, pos, exact=False)
        for lo in range(0, n, CHUNK_LOCI):
            hi = min(lo + CHUNK_LOCI, n)
            log_shape[lo:hi] = counts_from_mean_logs(log_shape[lo:hi] / len(files), log_total[lo:hi] / len(files))
        out = {"pred_profs": log_shape, "pred_logcounts": logcounts / len(files), **true}
        chrom, start, end = _output_coords(files)
    finally:
        _close(files)
    write_predictions_h5(output, chrom, start, end, **out)
    bigwigs = []
    if sizes is not None:
        width = out["pred_profs"].shape[1]
        profile_start = start + (end - start) // 2 - width // 2  # the profile window centred on the output window
        names = [f"track_{t}" for t in range(out["pred_profs"].shape[2])]
        bigwigs = write_track_bigwigs(track_bigwig_template(bigwig), sizes, chrom, profile_start,
                                      out["pred_profs"], names)
    return Summary("predictions", output, [f.path for f in files], n, dropped, bigwigs)


def average_scores(paths: Sequence[str | Path], output: str | Path, *, intersect: bool = False,
                   chrom_sizes: str | Path | Mapping[str, int] | None = None, bigwig: str | Path | None = None,
                   progress: bool = True) -> Summary:
    """Average the fold models' score files (``counts_scores.h5`` or ``profile_scores.h5``) into ``output``.

    The output has ``bpnetz shap``'s layout, so ``bpnetz modisco`` / ``modisco motifs`` read it. With
    ``chrom_sizes`` and ``bigwig``, also writes the averaged projected contributions as one bigWig.
    """
    with exclusive_lock(output, what="averaged output"):  # one writer of this output at a time
        return _average_scores(paths, Path(output), intersect=intersect, chrom_sizes=chrom_sizes,
                               bigwig=bigwig, progress=progress)


def _average_scores(paths: Sequence[str | Path], output: Path, *, intersect: bool,
                    chrom_sizes: str | Path | Mapping[str, int] | None, bigwig: str | Path | None,
                    progress: bool) -> Summary:
    sizes = _chrom_sizes(chrom_sizes, bigwig)
    files = _open_all(paths, output, "scores", COORD_NAMES, SCORE_VALUES)
    try:
        shape = files[0].h5["hyp_scores"].shape
        if len(shape) != 3 or shape[2] != 4 or files[0].h5["input_seqs"].shape != shape:
            raise InputError(f"hyp_scores {shape} and input_seqs {files[0].h5['input_seqs'].shape} must both be "
                             "(N, L, 4).", path=files[0].path, fix="Pass score files written by `bpnetz shap`.")
        dropped = _match_loci(files, intersect=intersect)
        n = len(files[0].rows)
        hyp_scores = np.zeros((n, *shape[1:]), dtype=np.float32)  # the sum over folds, then the mean
        input_seqs = np.empty((n, *shape[1:]), dtype=np.int8)
        with _progress(files, "scores", progress) as bar:
            for k, f in enumerate(files):
                for pos, block in f.blocks(SCORE_VALUES, bar):
                    hyp_scores[pos] += block["hyp_scores"]
                    if k == 0:
                        input_seqs[pos] = block["input_seqs"]
                    else:
                        _check_agree("input_seqs", input_seqs[pos], block["input_seqs"], files, f, pos, exact=True)
        hyp_scores /= len(files)
        chrom, start, end = _output_coords(files)
    finally:
        _close(files)
    write_score_h5(output, chrom, start, end, hyp_scores, input_seqs)
    bigwigs = []
    if sizes is not None:
        projected = (hyp_scores * input_seqs).sum(axis=-1)
        bigwigs = [write_score_bigwig(bigwig, sizes, chrom, start, projected)]
    return Summary("scores", output, [f.path for f in files], n, dropped, bigwigs)
