"""The build: FASTA + bigWigs + peak/background files -> one sharded Zarr store of every locus.

Steps (all in :func:`build_store`):

1. Load and cross-check the inputs (chromosome names and lengths of FASTA, chrom.sizes and every bigWig),
   resolve and select the loci (:mod:`bpnetz.build.loci`); every source file is checksummed on two threads
   meanwhile and on into step 3 (:class:`PendingChecksums`), or its checksum is taken from the user's checksum
   cache when the file has not changed since it was last hashed (:class:`~bpnetz.store.checksum.ChecksumCache`).
2. Create ``<store>.partial`` with the arrays and the locus coordinates, or resume it when it was started by
   the same build (same build key); a partial store of other inputs is started over. The build key is written
   into it once the checksums are known (:class:`ResumeMark`).
3. One task per *region* (:mod:`bpnetz.build.regions`): the store chunks of one stretch of the genome, from
   every run of loci (peaks and background loci of the same stretch share their reads), run by forked worker
   processes (``concurrent.futures``), by Dask on threads of this process (one worker), or on a dask.distributed
   cluster. A task opens the FASTA and bigWigs once, reads its rows' windows and returns them encoded per chunk
   (a forked worker leaves them in a spill file: :func:`~bpnetz.build.regions.spill`); this process writes each shard
   (:data:`~bpnetz.store.schema.SHARD_LOCI` rows of every array) once all its chunks are in, then
   ``.blocks/<shard>.json`` with the shard's totals. Finished shards are skipped on a rerun. What a task costs,
   and why it reads and writes as it does (CPU-s of a 50,796-locus simulated build, 2114/1000, 4 count tracks,
   one thread, load ~12 on 2 cores; by shard, before regions): 11.8 s before, 6.2 s after

   - FASTA spans read straight from the file at the index's offsets (:func:`~bpnetz.genome.fasta.read_windows`;
     pyfaidx's string slicing and re-encoding took ~3.4 s);
   - bigWig spans read by :class:`~bpnetz.genome.bigwig_reader.BigWigReader` (its ``zlib`` inflation releases the
     GIL, pyBigWig's reads do not) and whole-numbered tracks filled in their stored dtype from the intervals
     (no float32 window arrays, NaN passes or per-window dtype checks);
   - each chunk encoded by :class:`~bpnetz.store.shards.ShardEncoder` (zarr's own bytes; zarr-python added ~0.1
     CPU-s per block over Blosc and ran the compression on its event-loop thread).

   The store's bytes are unchanged (every shard file identical to the previous builder's). pyBigWig and pyfaidx
   remain the independent readers of ``bpnetz store verify`` and of the exactness tests.
4. Check totals (a track with no value at any locus is an error), write the metadata, rename
   ``<store>.partial`` to ``<store>`` (an existing store is renamed aside first, then removed) and remove the
   block markers: readers never see a half-written store.

One build per store path at a time: the whole build holds the store's lock (:mod:`bpnetz.files.lock`); a second
build into the same path fails at once naming the first (two builds of different inputs used to mix their blocks
into one store and both report success). ``--overwrite`` replaces only a bpnetz store (:func:`schema.is_store`),
never another directory. :func:`find_or_build_store` waits for the lock instead, then reuses the store the first
job built.

Whole-numbered tracks (counts) are stored in the narrowest integer dtype that holds them: uint8, uint16 or int32,
planned from a sample of loci and the bigWigs' maximum (smaller stores, and the loader decodes and crops uint8
counts ~3x faster than int32); other tracks are float32. Every value is checked while it is written: one that the
planned dtype cannot hold exactly restarts the build with a wider one. Missing bigWig values are zeros.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz import __version__
from bpnetz.build import loci as loci_mod
from bpnetz.build import regions as regions_mod
from bpnetz.build.options import BuildOptions
from bpnetz.config import InputData, read_json
from bpnetz.errors import InputError
from bpnetz.files.atomic import swap_in
from bpnetz.files.lock import exclusive_lock
from bpnetz.files.remote import is_url, join, remote_lock
from bpnetz.genome.bigwig import bigwig_has_data, bigwig_windows, open_bigwig
from bpnetz.genome.bigwig_reader import BigWigReader, open_reader, windows_into
from bpnetz.genome.fasta import fasta_lengths, open_fasta, read_windows
from bpnetz.genome.intervals import read_blacklist, read_chrom_sizes
from bpnetz.memory import keep_freed_memory
from bpnetz.store import schema
from bpnetz.store.checksum import ChecksumCache, build_key, content_id, user_cache_path
from bpnetz.store.schema import StoreLayout, Track

PARTIAL_SUFFIX = ".partial"
BLOCKS_DIR = ".blocks"
BUILD_ATTR = "bpnetz_build"  # build key, signal dtype, block size: what a rerun needs to resume
COORD_CHUNK = 1 << 16
#: integer dtypes for whole-numbered tracks, narrowest first
COUNT_DTYPES = schema.TRACK_DTYPES[:-1]
#: Blosc/zstd level of fractional (float32, byte-shuffled) tracks and the coordinates. Measured on 256 simulated
#: loci (int32 counts, bitshuffle): level 3 gives ratio 67 at ~690 MB/s, level 9 ratio 84 at ~5 MB/s. Re-measured on
#: a 4,096-locus block of a 2114/1000 store (uint8 counts; one thread, best of 5, per locus: compress / decompress /
#: bytes): level 1 12.2 / 9.2 µs / 847, level 2 13.4 / 9.6 / 842, level 3 22.0 / 7.6 / 846, level 5 47.8 / 5.7 /
#: 829. Level 1 would save ~10 µs per locus once, at build, and cost ~1.6 µs per locus on every epoch's read.
CLEVEL = 3
#: Blosc codec of integer arrays (sequence codes, whole-numbered tracks; bit-shuffled): LZ4 at level 9. Measured on
#: a 4,096-locus block of the 40k-locus 2114/1000 benchmark store (seq + 2 count + 2 control tracks, uint8; one
#: thread, best of 5), compress / decompress ms and ratio: zstd-3 seq 18.7 / 7.9 / 4.05, signal 40.1 / 11.8 / 17.0,
#: control 35.8 / 15.1 / 22.7; zstd-1 16.1 / 14.0 / 4.07, 22.4 / 15.1 / 16.8, 23.9 / 18.6 / 22.2; LZ4-9 4.7 / 7.6 /
#: 3.96, 8.6 / 6.7 / 11.4, 8.1 / 7.3 / 13.9; LZ4HC-3 34.0 / 5.6 / 4.07. LZ4-9 compresses 4.4x faster than zstd-3
#: (23 -> 5.2 µs per locus: a fifth of a block task's CPU) and decompresses 1.6x faster (8.5 -> 5.3 µs per locus, on
#: every epoch's read), for 18% more bytes (846 -> ~1,000 per locus; the sequence, most of the bytes, only 2%).
INTEGER_CODEC = ("lz4", 9)


class TrackDtypeTooNarrow(Exception):
    """Raised by a block task that finds a value its array's planned dtype cannot hold (restart wider)."""

    def __init__(self, array: str, source: str, needed: str):
        super().__init__(f"{source} holds values that need {needed}")
        self.array, self.source, self.needed = array, source, needed

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        # rebuilt from its three fields when it crosses from a worker process (pickle's default passes the message)
        return type(self), (self.array, self.source, self.needed)


def fitting_dtype(values: np.ndarray, bound: float = 0.0) -> str:
    """The narrowest of :data:`COUNT_DTYPES` holding ``values`` (and ``bound``) exactly, else float32."""
    if values.size and not np.array_equal(values, np.floor(values)):
        return "float32"
    lo, hi = min(float(values.min(initial=0)), 0.0), max(float(values.max(initial=0)), bound)
    for dtype in COUNT_DTYPES:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return dtype
    return "float32"


def wider_dtype(a: str, b: str) -> str:
    """The wider of two track dtypes (:data:`~bpnetz.store.schema.TRACK_DTYPES` is ordered narrowest first)."""
    return max(a, b, key=schema.TRACK_DTYPES.index)


def _stored(values: np.ndarray, dtype: str, array: str, source: str) -> np.ndarray:
    """``values`` (float) as ``dtype``, or TrackDtypeTooNarrow when the dtype cannot hold them exactly."""
    if dtype == "float32":
        return values
    needed = fitting_dtype(values)
    if wider_dtype(needed, dtype) != dtype:
        raise TrackDtypeTooNarrow(array, source, needed)
    return values.astype(dtype)


# ------------------------------------------------------------------------------------------------ the inputs


@dataclass(frozen=True)
class SourceFile:
    """One input file of a build: absolute path and role ('genome', 'signal', 'loci', ...)."""

    path: str
    role: str


class PendingChecksums:
    """The sources' checksums (:meth:`ChecksumCache.checksum`; MD5 too for the genome), computed on two threads
    while the build goes on: hashing releases the GIL, and nothing but the build key needs them before the
    blocks are written (40,000-locus benchmark: 0.68 CPU-s of hashing, which had held the blocks back ~0.3 s)."""

    def __init__(self, sources: list[SourceFile], cache: ChecksumCache):
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="bpnetz-checksum")
        self._futures = [self._pool.submit(cache.checksum, s.path, md5=s.role == "genome") for s in sources]
        self._pool.shutdown(wait=False)

    def done(self) -> bool:
        return all(future.done() for future in self._futures)

    def result(self) -> list[dict[str, Any]]:
        """Every source's checksum, in source order (waits; a hashing error is raised here)."""
        return [future.result() for future in self._futures]

    def cancel(self) -> None:
        """Drop the hashing not yet started (a build that failed early)."""
        for future in self._futures:
            future.cancel()


@dataclass
class BuildInputs:
    """Everything a build needs, validated: layout, sources (checksums pending), selected loci, genome facts."""

    layout: StoreLayout
    sources: list[SourceFile]
    pending: PendingChecksums
    selection: loci_mod.Selection
    fasta_path: str
    fasta_len: dict[str, int]
    input_data_json: Any
    build_args: dict[str, Any]

    @property
    def checksums(self) -> list[dict[str, Any]]:
        """The sources' checksums (waits for the hashing)."""
        return self.pending.result()

    @property
    def genome(self) -> dict[str, Any]:
        sums = self.checksums[0]
        return {"path": self.fasta_path, "md5": sums["md5"], "checksum": sums["checksum"],
                "chroms": self.fasta_len, "length": int(sum(self.fasta_len.values()))}

    @property
    def key(self) -> str:
        """The build key (:func:`~bpnetz.store.checksum.build_key`; waits for the hashing)."""
        return _build_key(self.sources, [s["checksum"] for s in self.checksums], self.build_args)


def _bias_tracks(task: int, sources: list[str], smoothings: list[tuple[float, int] | None]) -> list[Track]:
    """Raw control tracks of a task in source order, then one smoothed copy per non-null smoothing entry."""
    strands = ["+", "-"] if len(sources) == 2 else ["."] * len(sources)
    labels = strands if len(sources) <= 2 else [str(i) for i in range(len(sources))]
    raw = [Track(name=f"{task}/bias/{label}", task=task, strand=strand, source=src)
           for src, strand, label in zip(sources, strands, labels, strict=True)]
    smoothed = [Track(name=f"{t.name}/smooth_{sigma:g}_{window}", task=task, strand=t.strand, source=t.source,
                      smoothing=(float(sigma), int(window)))
                for t, smoothing in zip(raw, smoothings, strict=True) if smoothing is not None
                for sigma, window in [smoothing]]
    return raw + smoothed


def make_layout(input_data: InputData, input_len: int, output_len: int, max_jitter: int) -> StoreLayout:
    """The store layout of an experiment: tracks per task ('+'/'-' for two sources, '.' for one), bias tracks."""
    if input_len < 1 or output_len < 1 or max_jitter < 0:
        raise InputError(f"lengths must be positive and max_jitter non-negative (got input {input_len}, "
                         f"output {output_len}, jitter {max_jitter}).")
    tracks: list[Track] = []
    bias: list[Track] = []
    ratios: dict[str, float] = {}
    for task_index, (key, spec) in enumerate(input_data.tasks.items()):
        strands = ["+", "-"] if spec.stranded else ["."]
        tracks += [Track(name=f"{key}/{strand}", task=task_index, strand=strand, source=str(Path(src).resolve()))
                   for src, strand in zip(spec.signal.source, strands, strict=True)]
        if spec.bias is not None:
            for sigma_window in spec.bias.smoothings:
                if sigma_window is not None and (sigma_window[0] <= 0 or sigma_window[1] < 1):
                    raise InputError(f"task \"{key}\": bias smoothing {list(sigma_window)} needs sigma > 0 and "
                                     "window >= 1.", path=input_data.path, fix="Use e.g. [7.0, 81] or null.")
            bias += _bias_tracks(task_index, [str(Path(s).resolve()) for s in spec.bias.source],
                                 spec.bias.smoothings)
        if spec.background_loci is not None:
            ratios[key] = float(spec.background_loci.ratio)
    return StoreLayout(input_len=input_len, output_len=output_len, max_jitter=max_jitter,
                       tasks=input_data.task_names, tracks=tracks, bias_tracks=bias, background_ratio=ratios)


def _collect_sources(input_data: InputData, fasta: Path, chrom_sizes: Path, blacklist: Path | None
                     ) -> list[SourceFile]:
    """Every input file once (by absolute path), genome first; loci refer to it by index."""
    found: dict[str, SourceFile] = {}

    def add(path: str | Path, role: str) -> None:
        resolved = str(Path(path).resolve())
        found.setdefault(resolved, SourceFile(resolved, role))

    add(fasta, "genome")
    add(chrom_sizes, "chrom_sizes")
    add(input_data.path, "input_data")
    for key, path in input_data.files():
        add(path, key.split(".")[1])  # the JSON key: signal, loci, background_loci or bias
    if blacklist is not None:
        add(blacklist, "blacklist")
    return list(found.values())


def _examples(names: Sequence[str], k: int = 3) -> str:
    return ", ".join(repr(n) for n in list(names)[:k]) + (", …" if len(names) > k else "")


def _check_names(what: str, path: str | Path, names: dict[str, int] | list[str], fasta_len: dict[str, int],
                 fasta_path: str | Path) -> None:
    """InputError when a source shares no chromosome name with the FASTA, or disagrees on a shared length."""
    common = [c for c in names if c in fasta_len]
    if not common:
        raise InputError(
            f"no chromosome name of the {what} ({_examples(list(names))}) occurs in the FASTA {fasta_path} "
            f"({_examples(list(fasta_len))}).", path=path,
            fix="Use files of the same assembly with the same naming (e.g. both 'chr1' or both '1'): rename the "
                "chromosomes consistently (add or strip the 'chr' prefix) or write chrom.sizes from the FASTA "
                "with 'cut -f1,2 genome.fa.fai > chrom.sizes'.")
    if isinstance(names, dict):
        for chrom in common:
            if names[chrom] != fasta_len[chrom]:
                raise InputError(f"chromosome {chrom!r} has length {names[chrom]} in the {what} but "
                                 f"{fasta_len[chrom]} in the FASTA {fasta_path}: different assemblies.", path=path,
                                 fix="Use files of the same genome assembly.")


def _bigwig_paths(store_layout: StoreLayout) -> list[str]:
    return list(dict.fromkeys(t.source for t in store_layout.tracks + store_layout.bias_tracks))


def _chromosomes(store_layout: StoreLayout, fasta_len: dict[str, int], fasta_path: Path, sizes: dict[str, int],
                 sizes_path: str, loci_chroms: set[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Usable chromosomes with lengths, and rejection reasons for loci chromosomes some source lacks."""
    bigwig_chroms = {}
    for path in _bigwig_paths(store_layout):
        handle = open_bigwig(path)
        bigwig_chroms[path] = {c: int(n) for c, n in handle.chroms().items()}
        handle.close()
        _check_names("bigWig", path, bigwig_chroms[path], fasta_len, fasta_path)
    usable = {c: n for c, n in sizes.items()
              if c in fasta_len and all(c in chroms for chroms in bigwig_chroms.values())}
    unavailable = {}
    for chrom in sorted(loci_chroms - set(usable)):
        if chrom not in sizes:
            continue  # select_loci names it
        if chrom not in fasta_len:
            unavailable[chrom] = loci_mod.REASON_NOT_IN_FASTA
        else:
            missing = next(p for p, chroms in bigwig_chroms.items() if chrom not in chroms)
            unavailable[chrom] = f"{loci_mod.REASON_NOT_IN_BIGWIG}:{Path(missing).name}"
    if not usable:
        raise InputError("no chromosome is present in the FASTA, chrom.sizes and every bigWig at once.",
                         path=sizes_path, fix="Use inputs of the same assembly and chromosome naming.")
    return usable, unavailable


def _read_all_loci(input_data: InputData, sources: list[SourceFile]) -> loci_mod.LocusTable:
    """Peaks and background loci of every task, in input order."""
    index = {s.path: i for i, s in enumerate(sources)}
    tables = []
    for task_index, spec in enumerate(input_data.tasks.values()):
        groups = [(spec.loci.source, schema.KIND_PEAK, False)]
        if spec.background_loci is not None:
            groups.append((spec.background_loci.source, schema.KIND_BACKGROUND, True))
        for paths, kind, allow_midpoint in groups:
            for path in paths:
                table = loci_mod.read_loci(path, task=task_index, kind=kind,
                                           source_file=index[str(Path(path).resolve())],
                                           allow_midpoint=allow_midpoint)
                if kind == schema.KIND_PEAK and len(table) == 0:
                    raise InputError("contains no loci.", path=path, fix="Check the peak file.")
                tables.append(table)
    return loci_mod.LocusTable.concat(tables)


def _check_loci_names(loci: loci_mod.LocusTable, sources: list[SourceFile], fasta_len: dict[str, int],
                      fasta_path: Path) -> None:
    """A loci file none of whose chromosomes is in the FASTA is a naming mismatch, not a set of rejections."""
    for file_index in np.unique(loci.source_file):
        chroms = set(loci.chrom[loci.source_file == file_index].tolist())
        if chroms and not chroms & set(fasta_len):
            _check_names("loci file", sources[file_index].path, sorted(chroms), fasta_len, fasta_path)


def _build_key(sources: list[SourceFile], source_checksums: list[str], build_args: dict[str, Any]) -> str:
    return build_key(source_checksums, {**build_args, "schema_version": schema.SCHEMA_VERSION,
                                        "paths": [s.path for s in sources]})


def prepare_inputs(input_data: str | Path, reference_genome: str | Path, chrom_sizes: str | Path,
                   options: BuildOptions, checksums: ChecksumCache,
                   rejected_bed: str | Path | None = None) -> BuildInputs:
    """Load and cross-check every input, resolve and select the loci; the sources' checksums start on threads
    (:class:`PendingChecksums`) and are waited for only where needed.

    When every locus is rejected, the rejected loci are written to ``rejected_bed`` (when given) and an InputError
    says how many were rejected for which reasons.
    """
    chroms, blacklist = options.chroms, options.blacklist
    spec = InputData.load(input_data)
    layout = make_layout(spec, options.input_len, options.output_len, options.max_jitter)
    fasta_path = Path(reference_genome)
    fasta = open_fasta(fasta_path)
    fasta_len = fasta_lengths(fasta)
    fasta.close()
    sizes = read_chrom_sizes(chrom_sizes)
    _check_names("chrom sizes file", chrom_sizes, sizes, fasta_len, fasta_path)
    if chroms is not None:
        unknown = [c for c in chroms if c not in sizes]
        if unknown:
            raise InputError(f"--chroms names {_examples(unknown)}, not in the chrom sizes file "
                             f"({_examples(list(sizes))}).", path=chrom_sizes, fix="Use names of chrom.sizes.")
    bl = read_blacklist(blacklist) if blacklist is not None else None
    sources = _collect_sources(spec, fasta_path, Path(chrom_sizes), Path(blacklist) if blacklist else None)
    pending = PendingChecksums(sources, checksums)
    try:
        table = _read_all_loci(spec, sources)
        _check_loci_names(table, sources, fasta_len, fasta_path)
        usable, unavailable = _chromosomes(layout, fasta_len, fasta_path, sizes, str(chrom_sizes),
                                           set(table.chrom.tolist()))
        selection = loci_mod.select_loci(table, layout, usable, unavailable,
                                         chroms=list(chroms) if chroms is not None else None, blacklist=bl)
        if len(selection.kept) == 0:
            _no_locus_kept(selection, sources, layout, chroms, rejected_bed, input_data)
        _check_bigwigs_have_data(layout, sorted(set(selection.kept.chrom.tolist())))
    except BaseException:
        pending.cancel()
        raise
    return BuildInputs(layout=layout, sources=sources, pending=pending, selection=selection,
                       fasta_path=str(fasta_path.resolve()), fasta_len=fasta_len,
                       input_data_json=read_json(input_data), build_args=options.content_args())


def _no_locus_kept(selection: loci_mod.Selection, sources: list[SourceFile], store_layout: StoreLayout,
                   chroms: Sequence[str] | None, rejected_bed: str | Path | None, input_data: str | Path) -> None:
    """Raise the InputError of a build that would store nothing, after writing the rejected loci to a BED."""
    counts = selection.rejected_counts()
    why = ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items(), key=lambda item: -item[1]))
    listed = ""
    if rejected_bed is not None:
        loci_mod.write_rejected_bed(rejected_bed, selection, [s.path for s in sources], store_layout.tasks)
        listed = f" Each rejected locus and its reason is listed in {rejected_bed}."
    if chroms is not None and counts.get(loci_mod.REASON_NOT_SELECTED):
        on = sorted(set(selection.rejected.chrom.tolist()))
        listed = (f" --chroms {' '.join(chroms)} left out {counts[loci_mod.REASON_NOT_SELECTED]:,} of them; the loci "
                  f"are on {_examples(on, 8)}.{listed}")
    raise InputError(f"no locus can be built: all {len(selection.rejected):,} loci were rejected ({why}).{listed}",
                     path=input_data,
                     fix=f"Check the chromosome names, --chroms and the window lengths (input {store_layout.input_len}"
                         f" + 2 x jitter {store_layout.max_jitter} must fit inside the chromosomes around each "
                         "summit).")


def _check_bigwigs_have_data(store_layout: StoreLayout, chroms: list[str]) -> None:
    for path in _bigwig_paths(store_layout):
        handle = open_bigwig(path)
        try:
            if not bigwig_has_data(handle, chroms):
                raise InputError(f"has no values on the chromosomes of the loci ({_examples(chroms)}): the track "
                                 "would be all zeros.", path=path,
                                 fix="Check that it is the right bigWig for this genome and experiment.")
        finally:
            handle.close()


# ------------------------------------------------------------------------------------------ one block of rows


def smooth_bias(extended: np.ndarray, sigma: float, window: int) -> np.ndarray:
    """Gaussian smoothing of control profiles, as the ``bias.smoothing: [sigma, window]`` entries define it.

    ``extended`` (n, L + 2r) holds the raw control over the stored profile window extended by ``r = window // 2``
    bases on each side (positions without a value, or outside the chromosome, are 0). The result (n, L) is, at
    each stored position i, ``sum_{k=-r..r} w_k · x[i + k]`` with ``w_k ∝ exp(-k² / (2 sigma²))`` normalised to
    sum 1: a Gaussian of standard deviation ``sigma`` truncated to ``window`` bases (2r + 1 taps), computed from
    real flanking values, so the stored window's edges are exact (equal to
    ``scipy.ndimage.gaussian_filter1d(x, sigma, truncate=r / sigma)`` on the extended read, cropped by r).
    """
    from scipy.ndimage import correlate1d

    radius = window // 2
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    smoothed = correlate1d(extended.astype(np.float64), weights, axis=1, mode="constant")
    return smoothed[:, radius:extended.shape[1] - radius].astype(np.float32)


def _row_sums(values: np.ndarray) -> np.ndarray:
    """Per row of (n, length) windows: the exact int64 total of an integer track, the float64 total of others."""
    return values.sum(axis=1, dtype=np.int64 if np.issubdtype(values.dtype, np.integer) else np.float64)


def _value_check(dtype: str, array: str, source: str) -> Callable[[np.ndarray], None]:
    """The check :func:`~bpnetz.genome.bigwig_reader.windows_into` gives a track's values (:func:`_stored`)."""
    def check(values: np.ndarray) -> None:
        _stored(values, dtype, array, source)

    return check


def _float_track_rows(handle: Any, source: str, chrom: np.ndarray, start: np.ndarray, out: np.ndarray, array: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """One track's windows into ``out`` (n, length) in its dtype (missing values 0) through float32 windows with NaN
    (float tracks, and files :class:`BigWigReader` does not read); returns, per window, the positions with a value
    and the total (:func:`_row_sums`)."""
    values = bigwig_windows(handle, chrom, start, out.shape[1])
    missing = np.isnan(values)
    finite = out.shape[1] - np.count_nonzero(missing, axis=1)
    values[missing] = 0
    out[...] = _stored(values, out.dtype.name, array, source)
    return finite, _row_sums(out)


def _signal_block(bigwigs: dict[str, Any], tracks: list[Track], chrom: np.ndarray, start: np.ndarray,
                  length: int, dtype: str, array: str = "signal") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows (n, length, tracks) of unsmoothed tracks, and per row and track (n, tracks) the totals (``"sum"``) and
    the positions with a value (``"finite"``). Whole-numbered tracks that :class:`BigWigReader` reads are read
    together, skipping float32 windows (:func:`~bpnetz.genome.bigwig_reader.windows_into`); the others take the
    float path (:func:`_float_track_rows`)."""
    out = np.empty((len(start), length, len(tracks)), dtype=dtype)
    finite = np.zeros((len(start), len(tracks)), np.int64)
    sums = np.zeros((len(start), len(tracks)), np.float64 if dtype == "float32" else np.int64)
    direct = [i for i, track in enumerate(tracks)
              if dtype != "float32" and isinstance(bigwigs[track.source], BigWigReader)]
    groups = [direct] if len(direct) == len(tracks) else [[i] for i in direct]  # a group: a contiguous slice of out
    for group in groups:
        columns = slice(group[0], group[-1] + 1)
        finite[:, columns], sums[:, columns] = windows_into(
            [bigwigs[tracks[i].source] for i in group], chrom, start, length, out[:, :, columns],
            [_value_check(dtype, array, tracks[i].source) for i in group])
    for i in sorted(set(range(len(tracks))) - set(direct)):
        finite[:, i], sums[:, i] = _float_track_rows(bigwigs[tracks[i].source], tracks[i].source, chrom, start,
                                                     out[:, :, i], array)
    return out, {"sum": sums, "finite": finite}


def bias_block(bigwigs: dict[str, Any], tracks: list[Track], chrom: np.ndarray, start: np.ndarray,
               length: int, dtype: str = "float32") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bias rows (n, length, bias tracks): raw controls and smoothed copies, with per-row totals and value counts
    (as :func:`_signal_block`)."""
    if not any(track.smoothing for track in tracks):
        return _signal_block(bigwigs, tracks, chrom, start, length, dtype, "bias")
    flank = {}
    for track in tracks:
        radius = track.smoothing[1] // 2 if track.smoothing else 0
        flank[track.source] = max(flank.get(track.source, 0), radius)
    extended, finite_by_source = {}, {}
    for source, f in flank.items():
        values = bigwig_windows(bigwigs[source], chrom, start - f, length + 2 * f)
        missing = np.isnan(values)
        finite_by_source[source] = length - np.count_nonzero(missing[:, f:f + length], axis=1)
        values[missing] = 0
        extended[source] = values
    out = np.empty((len(start), length, len(tracks)), dtype=dtype)
    for i, track in enumerate(tracks):
        f = flank[track.source]
        if track.smoothing is None:
            values = extended[track.source][:, f:f + length]
        else:
            radius = track.smoothing[1] // 2
            values = smooth_bias(extended[track.source][:, f - radius:f + length + radius], *track.smoothing)
        out[:, :, i] = _stored(values, dtype, "bias", track.source)
    sums = np.stack([_row_sums(out[:, :, i]) for i in range(len(tracks))], axis=1)
    return out, {"sum": sums, "finite": np.stack([finite_by_source[t.source] for t in tracks], axis=1)}


def _open_tracks(store_layout: StoreLayout) -> dict[str, Any]:
    """Every bigWig of the layout, open: a :class:`BigWigReader` where it reads the file, else pyBigWig."""
    return {path: open_reader(path) or open_bigwig(path) for path in _bigwig_paths(store_layout)}


def build_region(store_path: str, fasta_path: str, layout_dict: dict[str, Any], dtypes: dict[str, str],
                 chunks: np.ndarray, chrom: np.ndarray, summit: np.ndarray, region: int,
                 encoders: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read and encode the rows of store chunks ``chunks`` (one region: :mod:`bpnetz.build.regions`) of every array.

    Runs as one task (in a forked worker process, a thread, or on a cluster worker), so it takes only plain values
    (``chrom`` and ``summit``: the chunks' rows of the store's coordinates, chunk after chunk, passed rather than
    read back from the store, which cost ~7 µs per locus) and opens every file itself once. Returns ``{"region",
    "chunks", "encoded": {array: [stored bytes per chunk]}, "stats": {array: {"sum", "finite": (chunks, tracks)}}}``
    for :class:`~bpnetz.build.regions.ShardAssembler`, which writes the shards. ``encoders``: the data arrays'
    :class:`~bpnetz.store.shards.ShardEncoder` when the caller has them (a forked worker inherits the assembler's;
    opening the arrays took ~6.5 ms of zarr calls per region), else they are opened from the store.
    """
    if multiprocessing.parent_process() is not None:  # a worker process (forked, or a cluster's), not the caller's
        keep_freed_memory()  # see _block_process: a cluster's workers took 4.0 -> 2.0 s for the 40k benchmark's blocks
    store_layout = StoreLayout.from_dict(layout_dict)
    names = ["seq", "signal", *(["bias"] if store_layout.bias_tracks else [])]
    if encoders is None:
        import zarr

        root = zarr.open_group(store_path, mode="r", zarr_format=3)
        encoders = {name: regions_mod.shard_encoder(root[name]) for name in names}
    decoder = encoders["seq"].decoder
    lengths = regions_mod.chunk_lengths(chunks, decoder.chunk_rows, decoder.n_rows)
    bounds = np.r_[0, np.cumsum(lengths)]
    chrom, summit = np.asarray(chrom, dtype=object), np.asarray(summit, dtype=np.int64)
    seq_start, _ = store_layout.seq_window(summit)
    profile_start, _ = store_layout.profile_window(summit)
    encoded: dict[str, list[bytes]] = {}
    stats: dict[str, dict[str, np.ndarray]] = {}

    def encode(name: str, rows: np.ndarray) -> None:
        encoded[name] = [encoders[name].encode_chunk(rows[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]

    fasta = open_fasta(fasta_path)
    try:
        encode("seq", read_windows(fasta, chrom, seq_start, store_layout.seq_len))
    finally:
        fasta.close()
    bigwigs = _open_tracks(store_layout)
    try:
        read = {"signal": lambda: _signal_block(bigwigs, store_layout.tracks, chrom, profile_start,
                                                store_layout.profile_len, dtypes["signal"]),
                "bias": lambda: bias_block(bigwigs, store_layout.bias_tracks, chrom, profile_start,
                                           store_layout.profile_len, dtypes["bias"])}
        for name in names[1:]:
            rows, row_stats = read[name]()
            encode(name, rows)
            del rows
            stats[name] = {key: np.add.reduceat(values, bounds[:-1], axis=0) for key, values in row_stats.items()}
    finally:
        for handle in bigwigs.values():
            handle.close()
    return {"region": region, "chunks": np.asarray(chunks).tolist(), "encoded": encoded, "stats": stats}


# ------------------------------------------------------------------------------------------- the partial store


def _compressors(shuffle: str | None) -> list[Any]:
    """The bytes-to-bytes codecs of a chunk: Blosc (none for ``shuffle=None``; :data:`INTEGER_CODEC` for
    bit-shuffled integer arrays, zstd at :data:`CLEVEL` for byte-shuffled ones), then the chunk's CRC32C.

    The checksum is what lets every reader tell a damaged chunk from data (see ``schema.CHUNK_GUARANTEES``); it
    costs 4 bytes per chunk and a CRC32C pass (several GB/s) per read.
    """
    from zarr.codecs import BloscCodec, Crc32cCodec

    cname, clevel = INTEGER_CODEC if shuffle == "bitshuffle" else ("zstd", CLEVEL)
    blosc = [] if shuffle is None else [BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle)]
    return [*blosc, Crc32cCodec()]


def _create_partial(path: Path, inputs: BuildInputs, dtypes: dict[str, str], block_loci: int,
                    chunk_loci: int) -> dict[str, Any]:
    """A new partial store with its empty data arrays, which are returned by name (the locus coordinates follow:
    :func:`_write_loci`; then the build attributes: :class:`ResumeMark`)."""
    import zarr

    if path.exists():
        shutil.rmtree(path)
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    store_layout, kept = inputs.layout, inputs.selection.kept
    n = len(kept)
    # every chunk exists on disk (schema.CHUNK_GUARANTEES), so readers and verify tell a missing chunk from zeros
    config = {"write_empty_chunks": True}

    arrays = {}

    def data_array(name: str, tail: tuple[int, ...], dtype: str, dims: tuple[str, ...], shuffle: str) -> None:
        arrays[name] = root.create_array(name, shape=(n, *tail), chunks=(chunk_loci, *tail),
                                         shards=(block_loci, *tail), dtype=dtype, compressors=_compressors(shuffle),
                                         dimension_names=dims, fill_value=0, config=config)

    # bit-shuffling suits integer-valued data (codes, counts: 2-3x smaller and faster than byte shuffling);
    # byte shuffling suits fractional floats (smoothed or normalised tracks)
    def shuffle(dtype: str) -> str:
        return "shuffle" if dtype == "float32" else "bitshuffle"

    data_array("seq", (store_layout.seq_len,), "uint8", schema.SEQ_DIMS, "bitshuffle")
    data_array("signal", (store_layout.profile_len, store_layout.n_tracks), dtypes["signal"], schema.TRACK_DIMS,
               shuffle(dtypes["signal"]))
    if store_layout.n_bias:
        data_array("bias", (store_layout.profile_len, store_layout.n_bias), dtypes["bias"], schema.BIAS_DIMS,
                   shuffle(dtypes["bias"]))
    return arrays


def _write_loci(path: Path, inputs: BuildInputs) -> None:
    """The locus coordinate arrays and the rejected loci of a new partial store (:func:`_create_partial`)."""
    import zarr

    root = zarr.open_group(str(path), mode="r+", zarr_format=3)
    kept = inputs.selection.kept
    n = len(kept)
    for name, values in kept.columns().items():
        dtype = schema.LOCUS_COORDS[name]
        array = root.create_array(name, shape=(n,), chunks=(min(n, COORD_CHUNK),), dtype=dtype,
                                  dimension_names=(schema.LOCUS_DIM,), config={"write_empty_chunks": True},
                                  compressors=_compressors(None if dtype is str else "shuffle"))
        array[:] = values.astype(str) if dtype is str else values.astype(dtype)
    loci_mod.write_rejected_bed(path / schema.REJECTED_BED, inputs.selection, [s.path for s in inputs.sources],
                                inputs.layout.tasks)


@dataclass
class ResumeMark:
    """The build attributes of a partial store (build key, dtypes, block size): what lets a rerun resume it.

    Written once the sources' checksums are known and the locus coordinates written, which may be while the
    blocks are written (it is tried after each finished region task, in the scheduling thread, and waited for
    before the store is finished): a partial store without them, interrupted while being created or before its checksums
    were known, is started over. zarr writes the group's metadata atomically, so block tasks opening the group
    meanwhile read the old or the new.

    The coordinates (:func:`_write_loci`) are written on a thread beside the first blocks, which need only the
    data arrays: on the 40k-locus benchmark they took 0.07-0.1 s of the ~0.5 s before the blocks started.
    """

    path: Path
    inputs: BuildInputs
    dtypes: dict[str, str]
    block_loci: int
    written: bool = False
    loci: Future | None = field(default=None, repr=False)
    #: the data arrays, when this build created the store (opening them again took ~35 ms of zarr calls)
    arrays: dict[str, Any] | None = field(default=None, repr=False)

    def start_over(self) -> None:
        """(Re)create the partial store with :attr:`dtypes` and start writing its coordinates; its attributes are
        then unwritten."""
        self._wait_for_loci()  # a dtype restart: the previous store's coordinates are done before it is removed
        self.arrays = _create_partial(self.path, self.inputs, self.dtypes, self.block_loci, schema.CHUNK_LOCI)
        pool = ThreadPoolExecutor(1, thread_name_prefix="bpnetz-loci")
        self.loci = pool.submit(_write_loci, self.path, self.inputs)
        pool.shutdown(wait=False)
        self.written = False

    def write_when_ready(self) -> None:
        if not self.written and self.inputs.pending.done() and (self.loci is None or self.loci.done()):
            self.write()

    def write(self) -> None:
        """Write the attributes (waits for the checksums and the coordinates) unless written."""
        if self.written:
            return
        import zarr

        self._wait_for_loci()
        root = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
        root.attrs[BUILD_ATTR] = {"key": self.inputs.key, "dtypes": self.dtypes, "block_loci": self.block_loci,
                                  "n_loci": len(self.inputs.selection.kept)}
        self.written = True

    def abandon(self) -> None:
        """Wait for the coordinates being written, ignoring an error (the build failed for another reason)."""
        if self.loci is not None:
            self.loci.exception()

    def _wait_for_loci(self) -> None:
        """Wait for the coordinates being written (an error writing them is raised here)."""
        if self.loci is not None:
            self.loci.result()


def _partial_state(path: Path) -> dict[str, Any] | None:
    """The build attributes of a partial store, or None when there is none (or it is unreadable)."""
    if not path.exists():
        return None
    try:
        import zarr

        return dict(zarr.open_group(str(path), mode="r", zarr_format=3).attrs).get(BUILD_ATTR)
    except Exception:  # a partial store broken beyond reading is simply started over
        return None


def _finished_blocks(path: Path) -> dict[int, dict[str, Any]]:
    """Stats of the blocks whose marker exists."""
    done = {}
    for marker in (path / BLOCKS_DIR).glob("*.json"):
        try:
            done[int(marker.stem)] = json.loads(marker.read_text())
        except (ValueError, json.JSONDecodeError):
            marker.unlink()
    return done


def _open_partial(partial: Path, inputs: BuildInputs, notices: list[str]) -> ResumeMark:
    """Resume the partial store of this build, or create it (anew when it belongs to other inputs).

    Returns its :class:`ResumeMark` (written when resumed): the track dtypes and block size it was created with.
    A partial store on disk makes the build wait for the checksums (its build key decides); a new one does not.
    """
    state = _partial_state(partial)
    if state is not None and (state.get("key") != inputs.key or "dtypes" not in state):
        notices.append(f"{partial} was started from other inputs or arguments; starting over.")
        state = None
    elif state is None and partial.exists():
        notices.append(f"{partial} holds no build key (interrupted before its inputs' checksums were recorded, or "
                       "unreadable); starting over.")
    if state is not None:
        return ResumeMark(partial, inputs, dict(state["dtypes"]), int(state["block_loci"]), written=True)
    mark = ResumeMark(partial, inputs, _plan_dtypes(inputs), schema.SHARD_LOCI)
    mark.start_over()
    return mark


def _plan_dtypes(inputs: BuildInputs, groups: int = 8, group_loci: int = 16) -> dict[str, str]:
    """Signal and bias dtypes: :func:`fitting_dtype` of a sample of loci and of the bigWigs' header maximum
    (smoothed bias is float32). The blocks check every value, so a poor plan costs a restart, never data.

    The header maximum sets the width, so the sample only tells whole-numbered tracks from fractional ones, which
    a fractional (normalised) track shows in nearly every window. The sample is ``groups`` runs of ``group_loci``
    consecutive store rows spread over the store: rows are in genome order, so a run of peaks is mostly one read
    span. Every span costs an R-tree descent, its data blocks' inflation and ~10 numpy calls: 512 spread-out
    windows took 0.78 s of the 40k-locus benchmark's 4.2 s, 128 took 0.25 s of 2.9 s, 8 runs of 16 took 0.05 s.
    """
    kept, lay = inputs.selection.kept, inputs.layout
    first = np.unique(np.linspace(0, max(len(kept) - group_loci, 0), groups).astype(np.int64))
    rows = np.unique(np.minimum((first[:, None] + np.arange(group_loci)).ravel(), len(kept) - 1))
    start, _ = lay.profile_window(kept.summit[rows])
    bigwigs = {path: open_bigwig(path) for path in _bigwig_paths(lay)}
    readers = _open_tracks(lay)  # the sample's values (pyBigWig's took ~0.3 s of the 40k-locus benchmark's start)
    try:
        def header_max(tracks: list[Track]) -> float:  # pyBigWig reports the file's maximum as an integer
            return max(float(bigwigs[t.source].header()["maxVal"]) for t in tracks)

        signal, _ = _signal_block(readers, lay.tracks, kept.chrom[rows], start, lay.profile_len, "float32")
        dtypes = {"signal": fitting_dtype(signal, header_max(lay.tracks)), "bias": "float32"}
        if lay.bias_tracks and not any(t.smoothing for t in lay.bias_tracks):
            bias, _ = bias_block(readers, lay.bias_tracks, kept.chrom[rows], start, lay.profile_len)
            dtypes["bias"] = fitting_dtype(bias, header_max(lay.bias_tracks))
        return dtypes
    finally:
        for handle in [*bigwigs.values(), *readers.values()]:
            handle.close()


# ------------------------------------------------------------------------------------------------ scheduling


def _run_regions(calls: list[tuple], assembler: regions_mod.ShardAssembler, options: BuildOptions) -> list[dict]:
    """Run ``build_region(*call)`` for each call as one task: in local worker processes (:func:`_run_local`), as a
    Dask graph on threads of this process where there are none, or on a distributed cluster (``options.scheduler``,
    through Dask). Each result goes to ``assembler`` as it arrives, in this thread (it writes the shards the region
    completes); returns the stats of the shards written.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=len(assembler.expected), unit="block", desc="build", disable=not options.progress,
               file=sys.stderr)
    assembler.on_block = lambda stats: bar.update(1)
    try:
        if options.scheduler:
            _run_distributed(_region_tasks(build_region, calls), options.scheduler, assembler)
        else:
            _run_local(calls, options.workers, assembler)
    finally:
        bar.close()
    assembler.check_complete()
    return assembler.finished


def _region_tasks(function: Callable[..., dict[str, Any]], calls: list[tuple]) -> list[Any]:
    import dask

    return [dask.delayed(function, pure=False)(*call, dask_key_name=f"build_region-{call[-1]}") for call in calls]


def build_region_spilled(*call: Any, encoders: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`build_region` in a forked worker: the encoded chunks are handed over in a file of the partial store
    (:func:`~bpnetz.build.regions.spill`), and the task's CPU seconds in ``"cpu_seconds"`` (the workers outlive
    the block phase, so their CPU time cannot be read from this process's ended children)."""
    began = time.process_time()
    result = regions_mod.spill(build_region(*call, encoders=encoders), Path(call[0]) / regions_mod.SPILL_DIR)
    result["cpu_seconds"] = time.process_time() - began
    return result


#: the region calls and the data arrays' encoders of the local builds being run in this process, by build, for
#: the workers forked from it
_FORKED_CALLS: dict[int, tuple[list[tuple], dict[str, Any]]] = {}


def _forked_region(build: int, region: int) -> dict[str, Any]:
    """:func:`build_region_spilled` of a call a forked worker inherited (:data:`_FORKED_CALLS`), not received: a
    call carries its loci (chromosome names and summits, ~100 kB pickled for 6,656 loci) that every worker already
    holds, so the task is a few bytes; the encoders come along (a worker opening the arrays itself spent ~6.5 ms of
    zarr calls per region). Keyed by build, so builds run by threads of one process do not mix."""
    calls, encoders = _FORKED_CALLS[build]
    return build_region_spilled(*calls[region], encoders=encoders)


def _run_local(calls: list[tuple], workers: int | None, assembler: regions_mod.ShardAssembler) -> None:
    """The region tasks in forked worker processes (:func:`_worker_pool`), else in threads of this process.

    The processes get every task at once, through ``concurrent.futures``: Dask's local scheduler keeps one task
    per worker in flight and hands a worker its next task only after the result's callback (here the assembler's
    shard writes) has run, and the 40k-locus benchmark's workers waited 14-24 ms for each next task."""
    n = max(1, min(workers or os.cpu_count() or 1, len(calls)))
    with _worker_pool(n) as pool:
        if pool is None:
            _run_threads(calls, n, assembler)
        else:
            _run_forked(calls, pool, assembler)


def _run_forked(calls: list[tuple], pool: Executor, assembler: regions_mod.ShardAssembler) -> None:
    """Every region task submitted to the fork ``pool`` at once, by index into :data:`_FORKED_CALLS`."""
    from concurrent.futures import as_completed

    build = id(calls)
    _FORKED_CALLS[build] = calls, assembler.encoders  # before the fork (at the first task): every worker inherits them
    try:
        for future in as_completed([pool.submit(_forked_region, build, i) for i in range(len(calls))]):
            assembler.add(future.result())
    finally:
        del _FORKED_CALLS[build]


def _run_threads(calls: list[tuple], n: int, assembler: regions_mod.ShardAssembler) -> None:
    """The region tasks as a Dask graph on ``n`` threads of this process."""
    import dask
    from dask.callbacks import Callback
    from dask.threaded import get as threads  # the function: the name "threads" makes dask import distributed

    def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if str(key).startswith("build_region-"):
            assembler.add(result)

    with Callback(posttask=posttask):
        dask.compute(*_region_tasks(build_region, calls), scheduler=threads, num_workers=n)


@contextlib.contextmanager
def _worker_pool(n: int) -> Iterator[Executor | None]:
    """``n`` forked worker processes for the region tasks; None for one worker or a platform without fork (the
    tasks then run in threads of this process).

    Why processes: two threads shared the GIL and the address space's page-fault lock (a task fills and drops spans
    of up to a chromosome's length), so on the 40k-locus benchmark two threads ran 4 peak blocks 1.6x and 2
    background blocks 1.2-1.4x faster than one thread, and two forked processes 2.0x and 2.1x. Forked (they inherit
    the imported modules, so they start in milliseconds) once the regions are planned: forked with the build, so
    that they came up beside the input checks, they made those checks 0.13-0.20 -> 0.24-0.35 s (each page this
    process then wrote was copied away from the workers' shared view). On success the idle workers are left to
    exit on their own (joining them took 15-30 ms of the call); after a failure they are waited for, so that no
    task writes into the partial store any more.
    """
    if n < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"), initializer=_block_process)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=False)


def _block_process() -> None:
    """Start of a forked block worker.

    - Blosc compresses in the calling thread, as in a block thread (numcodecs otherwise uses Blosc's global thread
      pool from a main thread, whose threads a fork does not copy).
    - glibc keeps freed memory for reuse (:func:`~bpnetz.memory.keep_freed_memory`) instead of mapping and
      unmapping each large array: a block task allocates spans up to a chromosome long, and every fresh mapping is
      paid again in page faults. Measured on the 40k-locus benchmark's block reads, one process: 0.95 -> 0.67 s for
      2 background blocks, 0.67 -> 0.46 s for 4 peak blocks. The worker exits with the build.
    """
    from numcodecs import blosc

    blosc.use_threads = False
    keep_freed_memory()


def _client(address: str) -> Any:
    """A dask.distributed client of the scheduler at ``address`` (an InputError naming it when it cannot be had)."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--scheduler needs dask.distributed, which is not installed.",
                         fix="Install it with: pip install 'bpnetz[distributed]'.") from None
    try:
        return Client(address, timeout="30s")
    except OSError as err:
        raise InputError(f"cannot connect to the Dask scheduler at {address} ({err}).",
                         fix="Check the address (e.g. tcp://host:8786) and that the scheduler runs.") from None


def _cluster_workers(address: str) -> int | None:
    """The number of workers of the cluster at ``address`` (None when it has none yet), to plan the regions."""
    with _client(address) as client:
        return len(client.scheduler_info().get("workers", {})) or None


def _run_distributed(tasks: list[Any], address: str, assembler: regions_mod.ShardAssembler) -> None:
    from distributed import as_completed

    with _client(address) as client:
        for future in as_completed(client.compute(tasks)):
            assembler.add(future.result())
            future.release()


# ------------------------------------------------------------------------------------------------- the build


@dataclass
class BuildSummary:
    """What a build produced: counts, rejections, size and speed."""

    path: Path
    n_loci: int
    counts: dict[str, dict[str, int]]  # kind -> task -> loci
    rejected: dict[str, int]  # reason -> loci
    bytes_on_disk: int
    raw_bytes: int
    seconds: float
    block_seconds: float
    block_cpu_seconds: float | None  # CPU time of the block phase, local worker processes included (None on a cluster)
    blocks_built: int
    blocks_resumed: int
    loci_built: int
    dtypes: dict[str, str]  # signal and bias
    notices: list[str] = field(default_factory=list)

    @property
    def loci_per_second(self) -> float:
        """Loci read and written per second by the block tasks (excluding input checks and checksums)."""
        return self.loci_built / self.block_seconds if self.block_seconds > 0 else float("nan")

    @property
    def loci_per_cpu_second(self) -> float:
        """Loci per CPU-second of the local block tasks: the throughput one free core would give."""
        if not self.block_cpu_seconds:
            return float("nan")
        return self.loci_built / self.block_cpu_seconds

    @property
    def compression_ratio(self) -> float:
        return self.raw_bytes / self.bytes_on_disk if self.bytes_on_disk else float("nan")

    def format(self) -> str:
        per_task = "; ".join(f"{kind}: " + ", ".join(f"task {t} {n:,}" for t, n in tasks.items())
                             for kind, tasks in self.counts.items() if tasks)
        rejected = sum(self.rejected.values())
        why = ", ".join(f"{reason} {n:,}" for reason, n in self.rejected.items())
        resumed = f", {self.blocks_resumed} block(s) resumed" if self.blocks_resumed else ""
        return "\n".join([
            f"built {self.path}: {self.n_loci:,} loci ({per_task}), signal {self.dtypes['signal']}"
            + (f", bias {self.dtypes['bias']}" if self.dtypes.get("bias") else ""),
            f"rejected {rejected:,} loci" + (f" ({why}) -> {self.path / schema.REJECTED_BED}" if rejected else ""),
            f"size on disk {self.bytes_on_disk / 1e6:,.1f} MB, raw {self.raw_bytes / 1e6:,.1f} MB, compression "
            f"{self.compression_ratio:.1f}x; {self.loci_built:,} loci written in {self.block_seconds:.1f} s "
            f"({self.loci_per_second:,.0f} loci/s{resumed}), {self.seconds:.1f} s in all",
        ])


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _raw_bytes(store_layout: StoreLayout, n: int, dtypes: dict[str, str]) -> int:
    per_locus = (store_layout.seq_len
                 + store_layout.profile_len * store_layout.n_tracks * np.dtype(dtypes["signal"]).itemsize
                 + store_layout.profile_len * store_layout.n_bias * np.dtype(dtypes["bias"]).itemsize)
    return int(n * per_locus)


def _counts(kept: loci_mod.LocusTable, tasks: list[str]) -> dict[str, dict[str, int]]:
    return {kind_name: {tasks[t]: int(((kept.kind == kind) & (kept.task == t)).sum()) for t in range(len(tasks))
                        if ((kept.kind == kind) & (kept.task == t)).any()}
            for kind, kind_name in enumerate(schema.KIND_NAMES)}


def _totals(store_layout: StoreLayout, blocks: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-track sums over all blocks; a track without a single value at any locus is an error."""
    totals: dict[str, dict[str, float]] = {}
    for array, tracks in (("signal", store_layout.tracks), ("bias", store_layout.bias_tracks)):
        if not tracks:
            continue
        for i, track in enumerate(tracks):
            if sum(b[array]["finite"][i] for b in blocks) == 0:
                raise InputError(f"has no value in any locus window (track {track.name}): the track would be all "
                                 "zeros.", path=track.source, fix="Check that it is the right bigWig.")
        totals[array] = {t.name: sum(b[array]["sum"][i] for b in blocks) for i, t in enumerate(tracks)}
    return totals


def _metadata(inputs: BuildInputs, totals: dict[str, Any], dtypes: dict[str, str]) -> dict[str, Any]:
    kept, store_layout = inputs.selection.kept, inputs.layout
    sources = [{"path": s.path, "role": s.role, "size": c["size"], "checksum": c["checksum"]}
               for s, c in zip(inputs.sources, inputs.checksums, strict=True)]
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "bpnetz_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "layout": store_layout.to_dict(),
        "n_loci": len(kept),
        "n_rejected": len(inputs.selection.rejected),
        "counts": _counts(kept, store_layout.tasks),
        "rejected": inputs.selection.rejected_counts(),
        "signal_dtype": dtypes["signal"],
        **({"bias_dtype": dtypes["bias"]} if store_layout.n_bias else {}),
        "genome": inputs.genome,
        "sources": sources,
        "configs": {"input_data": inputs.input_data_json, "build": inputs.build_args},
        "build_key": inputs.key,
        "checksum": content_id([c["checksum"] for c in inputs.checksums], store_layout.to_dict(), kept.columns()),
        "totals": totals,
        schema.CHUNKS_KEY: dict(schema.CHUNK_GUARANTEES),
    }


def _finish(partial: Path, output: Path, meta: dict[str, Any], overwrite: bool) -> None:
    """Write the metadata, swap the partial store into place (renames only), then drop the block markers.

    An existing store is renamed aside, the new one renamed in, the old one removed: a reader never sees a store
    half deleted, and one that opened the old store notices the change at its next block read (StoreReader pins
    the content id). The build attributes stay, so a build interrupted at any point of this sequence resumes
    with nothing to redo.
    """
    import zarr

    root = zarr.open_group(str(partial), mode="r+", zarr_format=3)
    root.attrs.put({schema.ATTR_KEY: meta, BUILD_ATTR: dict(root.attrs)[BUILD_ATTR]})
    if output.exists() and not overwrite:
        raise InputError("appeared while building; not replaced.", path=output, fix="Use --overwrite.")
    _check_overwritable(output)
    swap_in(partial, output)
    shutil.rmtree(output / BLOCKS_DIR, ignore_errors=True)


def _check_overwritable(output: Path) -> None:
    """Refuse to replace anything at ``output`` but a bpnetz store (a user's directory or file survives)."""
    if (output.exists() or output.is_symlink()) and (output.is_symlink() or not schema.is_store(output)):
        raise InputError("exists and is not a bpnetz store (no Zarr group with the 'bpnetz' attribute); --overwrite "
                         "replaces only stores.", path=output,
                         fix="Choose another --output, or move that data away first.")


def build_store(input_data: str | Path, reference_genome: str | Path, chrom_sizes: str | Path, output: str | Path,
                options: BuildOptions | None = None) -> BuildSummary:
    """Build (or resume building) the store of an experiment at ``output``; see the module docstring.

    ``options``: see :class:`~bpnetz.build.options.BuildOptions` (None: its defaults)."""
    return _build(input_data, reference_genome, chrom_sizes, output, options or BuildOptions(),
                  ChecksumCache(user_cache_path()))


def _build(input_data: str | Path, reference_genome: str | Path, chrom_sizes: str | Path, output: str | Path,
           options: BuildOptions, checksums: ChecksumCache) -> BuildSummary:
    if is_url(output):
        return _build_at_url(input_data, reference_genome, chrom_sizes, str(output), options, checksums)
    output = Path(output)
    with exclusive_lock(output, what="store"):
        return _build_locked(input_data, reference_genome, chrom_sizes, output, options, checksums)


def _parallelism(options: BuildOptions) -> int:
    """The worker count the regions are planned for: ``--workers``, else the cluster's workers, else the cores."""
    return options.workers or (options.scheduler and _cluster_workers(options.scheduler)) or os.cpu_count() or 1


def _region_calls(partial: Path, inputs: BuildInputs, dtypes: dict[str, str], todo: list[int], mark: ResumeMark,
                  parallel: int) -> tuple[list[tuple], regions_mod.ShardAssembler]:
    """For the unfinished blocks ``todo``: one :func:`build_region` call per region
    (:func:`~bpnetz.build.regions.plan_regions`, for ``parallel`` workers), and the assembler of their shards."""
    arrays = mark.arrays
    if arrays is None:  # a resumed store
        import zarr

        root = zarr.open_group(str(partial), mode="r+", zarr_format=3)
        arrays = {name: root[name] for name in ("seq", "signal", "bias") if name in root}
    assembler = regions_mod.ShardAssembler(arrays, todo, partial / BLOCKS_DIR, after_add=mark.write_when_ready)
    kept = inputs.selection.kept
    regions = regions_mod.plan_regions(kept.chrom, kept.summit, todo, assembler.shard_rows, assembler.chunk_rows,
                                       parallel)
    layout = inputs.layout.to_dict()
    calls = []
    for i, chunks in enumerate(regions):
        rows = regions_mod.chunk_rows_of(chunks, assembler.chunk_rows, assembler.n_rows)
        calls.append((str(partial), inputs.fasta_path, layout, dtypes, chunks, kept.chrom[rows], kept.summit[rows], i))
    return calls, assembler


def _build_locked(input_data: str | Path, reference_genome: str | Path, chrom_sizes: str | Path, output: Path,
                  options: BuildOptions, checksums: ChecksumCache) -> BuildSummary:
    """:func:`_build` while holding the store's lock (one build per store path at a time)."""
    began = time.perf_counter()
    scheduler, progress, overwrite = options.scheduler, options.progress, options.overwrite
    if output.exists() and not overwrite:
        raise InputError("already exists.", path=output,
                         fix="Choose another --output, delete it, or pass --overwrite to replace it.")
    if overwrite:
        _check_overwritable(output)
    inputs = prepare_inputs(input_data, reference_genome, chrom_sizes, options, checksums,
                            rejected_bed=Path(f"{output.absolute()}.{schema.REJECTED_BED}"))
    partial = Path(str(output.absolute()) + PARTIAL_SUFFIX)  # absolute: cluster workers open it too
    notices: list[str] = []
    mark = _open_partial(partial, inputs, notices)
    dtypes, block_loci = mark.dtypes, mark.block_loci
    for notice in notices:
        print(f"notice: {notice}", file=sys.stderr)

    n = len(inputs.selection.kept)
    n_blocks = -(-n // block_loci)
    parallel = _parallelism(options)  # asked once: a cluster's worker count costs a connection
    try:
        while True:
            done = _finished_blocks(partial)
            todo = [b for b in range(n_blocks) if b not in done]
            blocks_began, cpu_began = time.perf_counter(), time.process_time()
            try:
                calls, assembler = _region_calls(partial, inputs, dtypes, todo, mark, parallel)
                results = _run_regions(calls, assembler, options)
                break
            except TrackDtypeTooNarrow as err:
                dtypes[err.array] = wider_dtype(dtypes[err.array], err.needed)
                notices.append(f"{err}; {err.array} is stored as {dtypes[err.array]}.")
                print(f"notice: {notices[-1]} Restarting.", file=sys.stderr)
                mark.start_over()  # dtypes is mark.dtypes, widened above
        block_seconds = time.perf_counter() - blocks_began
        shutil.rmtree(partial / regions_mod.SPILL_DIR, ignore_errors=True)  # any left by an interrupted run
        block_cpu_seconds = None if scheduler else time.process_time() - cpu_began + assembler.task_cpu_seconds
        mark.write()  # after the blocks' timing: it may wait for the hashing to finish
        done.update({r["block"]: r for r in results})
        totals = _totals(inputs.layout, [done[b] for b in range(n_blocks)])
        _finish(partial, output, _metadata(inputs, totals, dtypes), overwrite)
    except BaseException:
        inputs.pending.cancel()  # the hashing not yet started
        mark.abandon()  # no thread of this build writes into the partial store once the build has failed
        raise
    summary = BuildSummary(
        path=output, n_loci=n, counts=_counts(inputs.selection.kept, inputs.layout.tasks),
        rejected=inputs.selection.rejected_counts(), bytes_on_disk=_disk_bytes(output),
        raw_bytes=_raw_bytes(inputs.layout, n, dtypes), seconds=time.perf_counter() - began,
        block_seconds=block_seconds, block_cpu_seconds=block_cpu_seconds, blocks_built=len(todo),
        blocks_resumed=n_blocks - len(todo),
        loci_built=sum(r["rows"] for r in results), dtypes=dtypes if inputs.layout.n_bias else
        {"signal": dtypes["signal"]}, notices=notices)
    if progress:
        print(summary.format(), file=sys.stderr)
    return summary


def _build_at_url(input_data: str | Path, reference_genome: str | Path, chrom_sizes: str | Path, url: str,
                  options: BuildOptions, checksums: ChecksumCache) -> BuildSummary:
    """Build the store locally in staging, upload it to ``url`` and commit it (see :mod:`bpnetz.build.remote`)."""
    from bpnetz.build import remote

    url = url.rstrip("/")
    remote.check_writable_url(url, options.overwrite)
    with remote_lock(url, what="store"):
        remote.check_not_committed(url)
        local = remote.staging_path(url)
        staged = remote.staged_store_key(local)
        if staged is not None and staged != input_key(input_data, reference_genome, chrom_sizes, options, checksums):
            shutil.rmtree(local)  # a finished store of other inputs: not the one to publish here
        if staged is None or not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            summary = _build(input_data, reference_genome, chrom_sizes, local,
                             replace(options, overwrite=False), checksums)
        else:
            summary = _resumed_summary(local)
        bytes_on_disk = summary.bytes_on_disk
        remote.publish(local, url)
    summary = replace(summary, path=url, bytes_on_disk=bytes_on_disk)  # type: ignore[arg-type]
    if options.progress:
        print(f"committed {url} ({bytes_on_disk / 1e6:,.1f} MB uploaded, commit marker written last)",
              file=sys.stderr)
    return summary


def _resumed_summary(local: Path) -> BuildSummary:
    """The summary of a store finished in staging by an earlier, interrupted run (nothing built now)."""
    meta = schema.metadata(schema.open_group(local))
    return BuildSummary(path=local, n_loci=int(meta["n_loci"]), counts=meta.get("counts", {}),
                        rejected=meta.get("rejected", {}), bytes_on_disk=_disk_bytes(local), raw_bytes=0,
                        seconds=0.0, block_seconds=0.0, block_cpu_seconds=None, blocks_built=0, blocks_resumed=0,
                        loci_built=0, dtypes={"signal": meta["signal_dtype"]})


def input_key(input_data: str | Path, reference_genome: str | Path, chrom_sizes: str | Path,
              options: BuildOptions, checksums: ChecksumCache) -> str:
    """The build key of these inputs and options (the sources' checksums, lengths, chroms, blacklist): what
    names a store in a catalog or cache, computed without resolving any locus."""
    spec = InputData.load(input_data)
    sources = _collect_sources(spec, Path(reference_genome), Path(chrom_sizes),
                               Path(options.blacklist) if options.blacklist else None)
    for source in sources:
        if not Path(source.path).is_file():
            raise InputError("does not exist.", path=source.path)
    sums = [checksums.checksum(s.path, md5=s.role == "genome")["checksum"] for s in sources]
    return _build_key(sources, sums, options.content_args())


def find_or_build_store(cache_dir: str | Path, input_data: str | Path, reference_genome: str | Path,
                        chrom_sizes: str | Path, options: BuildOptions | None = None) -> Path | str:
    """The cached store of these inputs and arguments under ``cache_dir``, built first when absent.

    The cache key is the build key (source files' checksums — remembered per unchanged file in
    ``cache_dir/checksums.json`` — lengths, chroms and blacklist), so the ``bpnet-*`` compatibility commands
    reuse one store across train, predict and shap instead of rebuilding it each time. ``options.overwrite`` is
    ignored: a cached store is never replaced.
    """
    options = replace(options or BuildOptions(), overwrite=False)
    remote = is_url(cache_dir)
    checksums = ChecksumCache(None if remote else Path(cache_dir) / "checksums.json")
    key = input_key(input_data, reference_genome, chrom_sizes, options, checksums)
    path = join(cache_dir, f"store-{key[:20]}.zarr")
    exists = (lambda: schema.commit_record(str(path)) is not None) if remote else Path(path).exists
    if exists():
        if options.progress:
            print(f"using cached store {path}", file=sys.stderr)
        return path
    if not remote:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    lock = remote_lock(str(path) + ".wait", what="cached store", wait=True) if remote else \
        exclusive_lock(path, what="cached store", wait=True)
    with lock:  # a second job waits, then reuses the store
        if exists():
            if options.progress:
                print(f"using cached store {path} (built by another job meanwhile)", file=sys.stderr)
            return path
        _build(input_data, reference_genome, chrom_sizes, path, options, checksums)
    return path
