"""``bpnetz store info`` and ``bpnetz store verify``: describe a store from its metadata, and check it.

``info`` prints what the build recorded (no array is read), including whether the store's chunks carry CRC32C
checksums. ``verify`` re-checks a store against that record and reports each problem on one line:

* every array has the schema's shape and dtype;
* every shard (or chunk) of every array, ``seq`` and the locus coordinates included, exists and is read and
  decoded whole: a missing, truncated or damaged shard (chunk CRC32C, index CRC32C, a chunk that does not
  decompress) is named by its file (:mod:`bpnetz.store.shards`);
* the per-track totals equal the arrays' sums, the locus counts and the content id match the coordinates;
* the source files, where still reachable, have the recorded size and checksum;
* a seeded sample of rows (:data:`SAMPLE_ROWS`, plus the first and last) is re-derived from the sources recorded
  in the store with the build's own readers (``seq`` from the FASTA, signal and raw bias tracks from the bigWigs)
  and compared with the stored rows; smoothed bias tracks are not re-derived (their kernel belongs to the build).

A store built before chunk checksums existed is read as it is, with a note that a rebuild adds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.errors import InputError
from bpnetz.store import schema
from bpnetz.store.shards import FIX, ShardDecoder, absent_blocks, array_name, read_checked

#: rows re-derived from the sources by ``verify`` (seeded), besides the first and last
SAMPLE_ROWS = 64
SAMPLE_SEED = 0
#: mismatching rows listed one by one per array (the rest are counted)
LISTED_ROWS = 10
#: relative tolerance of float totals (sums of float32 values in float64, in a different order).
FLOAT_RTOL = 1e-6


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n} B"


def store_info(path: str | Path) -> str:
    """A readable description of a store from its recorded metadata."""
    meta = schema.metadata(schema.open_group(path))
    store_layout = schema.StoreLayout.from_dict(meta["layout"])
    genome = meta.get("genome", {})
    lines = [
        f"store        {path}",
        (f"schema       {meta['schema_version']} (bpnetz {meta.get('bpnetz_version', '?')}), created "
         f"{meta.get('created', '?')}"),
        f"content id   {meta.get('checksum', '?')}",
        (f"lengths      input {store_layout.input_len}, output {store_layout.output_len}, max jitter "
         f"{store_layout.max_jitter} (stored seq {store_layout.seq_len}, profiles {store_layout.profile_len})"),
        f"loci         {meta.get('n_loci', '?'):,} stored, {meta.get('n_rejected', 0):,} rejected",
    ]
    for kind, tasks in meta.get("counts", {}).items():
        lines += [f"  {kind:<11}" + ", ".join(f"task {t}: {n:,}" for t, n in tasks.items())] if tasks else []
    for reason, n in meta.get("rejected", {}).items():
        lines.append(f"  rejected   {reason}: {n:,}")
    if store_layout.background_ratio:
        lines.append("background   ratio " + ", ".join(f"task {t}: {r:g}"
                                                       for t, r in store_layout.background_ratio.items()))
    totals = meta.get("totals", {})
    lines.append(f"signal       {store_layout.n_tracks} tracks, {meta.get('signal_dtype', '?')}")
    lines += [f"  {t.name:<24} total {totals.get('signal', {}).get(t.name, float('nan')):>16,.6g}  {t.source}"
              for t in store_layout.tracks]
    if store_layout.bias_tracks:
        lines.append(f"bias         {store_layout.n_bias} tracks, {meta.get('bias_dtype', 'float32')}")
        lines += [f"  {t.name:<24} total {totals.get('bias', {}).get(t.name, float('nan')):>16,.6g}  {t.source}"
                  + (f"  (smoothing sigma {t.smoothing[0]:g}, window {t.smoothing[1]})" if t.smoothing else "")
                  for t in store_layout.bias_tracks]
    lines.append(_chunks_line(schema.chunk_guarantees(meta)))
    if genome:
        lines.append(f"genome       {genome.get('path')} ({len(genome.get('chroms', {}))} chromosomes, "
                     f"{genome.get('length', 0):,} bp, md5 {genome.get('md5')})")
    lines.append("sources")
    lines += [f"  {s.get('role', ''):<15} {_fmt_bytes(s['size']):>10}  {s['checksum']}  {s['path']}"
              for s in meta.get("sources", [])]
    build = meta.get("configs", {}).get("build")
    if build:
        lines.append("build args   " + ", ".join(f"{k}={v}" for k, v in build.items()))
    return "\n".join(lines)


#: note of a store whose chunks carry no checksums (built before they were added)
NO_CHUNK_CHECKSUMS = ("the store's chunks carry no CRC32C checksums (it was built before bpnetz added them), so "
                      "damage inside a chunk can go unnoticed; rebuild it with 'bpnetz build' to add them")


def _chunks_line(guarantees: dict[str, Any]) -> str:
    if guarantees["checksum"]:
        written = ", every chunk written (a missing one is damage)" if guarantees["all_written"] else ""
        return f"chunks       {guarantees['checksum'].upper()} checksum per chunk, checked on every read{written}"
    return f"chunks       no checksums: {NO_CHUNK_CHECKSUMS.split(', so ')[1]}"


@dataclass
class Verification:
    """Outcome of :func:`verify_store`: problems (the store is not as recorded) and informational notes."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _expected_arrays(store_layout: schema.StoreLayout, n: int, meta: dict[str, Any]
                     ) -> dict[str, tuple[tuple[int, ...], list[str]]]:
    """name -> (shape, allowed dtypes) of every array the schema requires."""
    tracks = list(schema.TRACK_DTYPES)
    expected = {
        "seq": ((n, store_layout.seq_len), ["uint8"]),
        "signal": ((n, store_layout.profile_len, store_layout.n_tracks),
                   [meta["signal_dtype"]] if meta.get("signal_dtype") else tracks),
    }
    if store_layout.n_bias:
        expected["bias"] = ((n, store_layout.profile_len, store_layout.n_bias),
                            [meta.get("bias_dtype", "float32")])
    for name, dtype in schema.LOCUS_COORDS.items():
        expected[name] = ((n,), ["str"] if dtype is str else [np.dtype(dtype).name])
    return expected


def _dtype_name(array: Any) -> str:
    dtype = array.dtype
    return "str" if getattr(dtype, "kind", "") in "OUT" else np.dtype(dtype).name


def _without_fix(err: InputError) -> str:
    return str(err).replace(f" {FIX}", "")


def _read_every_block(array: Any, all_written: bool) -> tuple[list[str], np.ndarray | None]:
    """Read and decode every shard (chunk, when unsharded) of an array: one problem line per bad one, and the
    per-track sums of a track array (None for other arrays, or when a block could not be read)."""
    name = array_name(array)
    rows = int((array.shards or array.chunks)[0])
    absent = {first: path for first, _, path in absent_blocks(array)}
    decoder = ShardDecoder.for_array(array, all_written=all_written)
    tracks = array.ndim == 3
    sums = np.zeros(array.shape[-1], np.float64 if array.dtype.kind == "f" else np.int64) if tracks else None
    problems = []
    for lo in range(0, int(array.shape[0]), rows):
        hi = min(lo + rows, int(array.shape[0]))
        if lo in absent:
            problems.append(f"array '{name}': rows {lo}-{hi - 1} were never written or are missing "
                            f"(shard file {absent[lo]})")
            continue
        try:
            if decoder is not None and decoder.shard_rows == rows:
                block = np.empty((hi - lo, *array.shape[1:]), array.dtype)
                decoder.read_into(lo // rows, block)
            else:
                block = read_checked(array, lo, hi, all_written=all_written)
        except InputError as err:
            problems.append(_without_fix(err))
            continue
        if sums is not None:
            sums += block.sum(axis=(0, 1), dtype=sums.dtype)
    return problems, (sums if not problems else None)


def _check_totals(meta: dict[str, Any], store_layout: schema.StoreLayout, sums: dict[str, np.ndarray]
                  ) -> list[str]:
    problems = []
    for name, tracks in (("signal", store_layout.tracks), ("bias", store_layout.bias_tracks)):
        if not tracks or name not in sums:
            continue
        recorded = meta.get("totals", {}).get(name)
        if recorded is None:
            problems.append(f"no recorded totals for '{name}'")
            continue
        for track, value in zip(tracks, sums[name], strict=True):
            want = recorded.get(track.name)
            if want is None or not math.isclose(float(value), float(want), rel_tol=FLOAT_RTOL, abs_tol=1e-3):
                problems.append(f"'{name}' track {track.name}: the arrays sum to {value:.8g}, the metadata "
                                f"records {want}")
    return problems


def _check_loci(group: Any, meta: dict[str, Any], store_layout: schema.StoreLayout) -> list[str]:
    from bpnetz.store.checksum import content_id

    problems = []
    columns = {name: group[name][:] for name in schema.LOCUS_COORDS}
    columns = {k: (v.astype(object) if schema.LOCUS_COORDS[k] is str else v) for k, v in columns.items()}
    for kind_name, tasks in meta.get("counts", {}).items():
        kind = schema.KIND_NAMES.index(kind_name)
        for task, n in tasks.items():
            found = int(((columns["kind"] == kind) & (columns["task"] == store_layout.tasks.index(task))).sum())
            if found != n:
                problems.append(f"{kind_name} loci of task {task}: {found} rows, the metadata records {n}")
    sources = [s["checksum"] for s in meta.get("sources", [])]
    if content_id(sources, meta["layout"], columns) != meta.get("checksum"):
        problems.append("the content id recomputed from the sources, layout and loci differs from the recorded "
                        f"{meta.get('checksum')}")
    return problems


def _check_sources(meta: dict[str, Any], result: Verification) -> None:
    from bpnetz.store.checksum import FILE_DIGESTS, checksum_algorithm, checksum_matches

    for source in meta.get("sources", []):
        path = Path(source["path"])
        if not path.is_file():
            result.notes.append(f"source not reachable here, not checked: {path}")
            continue
        if path.stat().st_size != source["size"]:
            result.problems.append(f"source {path} has size {path.stat().st_size}, recorded {source['size']}")
        elif checksum_algorithm(source["checksum"]) not in FILE_DIGESTS:
            result.notes.append(f"source {path} not checked: its checksum algorithm "
                                f"{checksum_algorithm(source['checksum'])!r} is unknown to this version")
        elif not checksum_matches(path, source["checksum"]):  # with the algorithm the store records
            result.problems.append(f"source {path} has changed since the build (checksum differs)")


def _sample_rows(n: int, k: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> np.ndarray:
    """A seeded sample of ``k`` store rows plus the first and the last, sorted."""
    if n <= 0:
        return np.zeros(0, np.int64)
    drawn = np.random.default_rng(seed).choice(n, size=min(k, n), replace=False)
    return np.unique(np.concatenate([[0, n - 1], drawn]).astype(np.int64))


def _row_mismatches(name: str, rows: np.ndarray, differs: np.ndarray, chrom: np.ndarray, summit: np.ndarray,
                    source: str) -> list[str]:
    """Problem lines of the sampled rows whose stored values differ from their re-derivation."""
    bad = np.flatnonzero(differs)
    lines = [f"array '{name}' row {rows[i]} (locus {chrom[i]}:{summit[i]}) differs from {source}"
             for i in bad[:LISTED_ROWS]]
    if len(bad) > LISTED_ROWS:
        lines.append(f"array '{name}': {len(bad) - LISTED_ROWS} more sampled rows differ from {source}")
    return lines


def _equal_rows(stored: np.ndarray, derived: np.ndarray) -> np.ndarray:
    """Per row: stored values equal to the re-derived ones as the build stores them (whole numbers exactly)."""
    if stored.dtype.kind == "f":
        same = stored == derived.astype(stored.dtype)
    else:
        same = stored.astype(np.float64) == derived.astype(np.float64)
    return same.reshape(len(stored), -1).all(axis=1)


def _check_sample(group: Any, meta: dict[str, Any], store_layout: schema.StoreLayout, result: Verification) -> None:
    """Re-derive :func:`_sample_rows` from the recorded sources with the build's readers; see the module docstring."""
    from bpnetz.genome.bigwig import bigwig_windows, open_bigwig
    from bpnetz.genome.fasta import fasta_windows, open_fasta

    rows = _sample_rows(int(group["seq"].shape[0]))
    chrom = np.asarray(group["chrom"].get_orthogonal_selection((rows,)), dtype=object)
    summit = np.asarray(group["summit"].get_orthogonal_selection((rows,)), dtype=np.int64)
    genome = meta.get("genome", {}).get("path")
    if genome and Path(genome).is_file():
        fasta = open_fasta(genome)
        try:
            derived = fasta_windows(fasta, chrom, store_layout.seq_window(summit)[0], store_layout.seq_len)
        finally:
            fasta.close()
        stored = group["seq"].get_orthogonal_selection((rows,))
        result.problems += _row_mismatches("seq", rows, ~_equal_rows(stored, derived), chrom, summit, genome)
    elif genome:
        result.notes.append(f"genome FASTA not reachable here, sampled 'seq' rows not re-derived: {genome}")
    else:
        result.notes.append("the store records no genome FASTA: sampled 'seq' rows not re-derived")
    start = store_layout.profile_window(summit)[0]
    for name, tracks in (("signal", store_layout.tracks), ("bias", store_layout.bias_tracks)):
        if not tracks:
            continue
        stored = group[name].get_orthogonal_selection((rows,))
        for k, track in enumerate(tracks):
            if track.smoothing is not None or not Path(track.source).is_file():
                continue  # unreachable sources are noted by _check_sources; smoothing is the build's kernel
            handle = open_bigwig(track.source)
            try:
                derived = np.nan_to_num(bigwig_windows(handle, chrom, start, store_layout.profile_len), nan=0.0)
            finally:
                handle.close()
            differs = ~_equal_rows(stored[:, :, k], derived)
            result.problems += _row_mismatches(f"{name}' track '{track.name}", rows, differs, chrom, summit,
                                               track.source)


def _check_rejected(path: str | Path, meta: dict[str, Any]) -> list[str]:
    from bpnetz.files.remote import is_url, join, read_object
    from bpnetz.store.schema import REJECTED_BED

    if not meta.get("n_rejected"):
        return []
    rejected = join(path, REJECTED_BED)
    if is_url(path):
        data = read_object(str(rejected))
        text = data.decode("utf-8", "replace") if data is not None else None
    else:
        text = Path(rejected).read_text() if Path(rejected).is_file() else None
    if text is None:
        return [f"{REJECTED_BED} is missing ({meta['n_rejected']} loci were rejected)"]
    lines = sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if lines != meta["n_rejected"]:
        return [f"{REJECTED_BED} lists {lines} loci, the metadata records {meta['n_rejected']}"]
    return []


def _check_arrays(group: Any, meta: dict[str, Any], store_layout: schema.StoreLayout, result: Verification
                  ) -> dict[str, np.ndarray]:
    """Shapes, dtypes and every block of every array; returns the per-track sums of the track arrays."""
    all_written = schema.chunk_guarantees(meta)["all_written"]
    sums = {}
    for name, (shape, dtypes) in _expected_arrays(store_layout, int(meta.get("n_loci", -1)), meta).items():
        try:
            array = group[name]
        except KeyError:
            result.problems.append(f"array '{name}' is missing")
            continue
        except Exception as err:  # noqa: BLE001 (a damaged zarr.json: zarr raises several types)
            result.problems.append(f"array '{name}': its metadata cannot be read ({type(err).__name__}: {err})")
            continue
        if tuple(array.shape) != shape or _dtype_name(array) not in dtypes:
            result.problems.append(f"array '{name}' has shape {tuple(array.shape)} and dtype {_dtype_name(array)}; "
                                   f"the schema and layout require {shape} and {' or '.join(dtypes)}")
            continue
        problems, array_sums = _read_every_block(array, all_written)
        result.problems += problems
        if array_sums is not None:
            sums[name] = array_sums
    return sums


def verify_store(path: str | Path, *, check_sources: bool = True) -> Verification:
    """Check a store against its schema and recorded metadata; see the module docstring.

    Raises :class:`~bpnetz.errors.InputError` only when the check cannot run (not a store, unreadable metadata);
    everything found wrong with the store is a line of :attr:`Verification.problems`.
    """
    group = schema.open_group(path)
    meta = schema.metadata(group)
    store_layout = schema.StoreLayout.from_dict(meta["layout"])
    result = Verification()
    if not schema.chunk_guarantees(meta)["checksum"]:
        result.notes.append(NO_CHUNK_CHECKSUMS)
    sums = _check_arrays(group, meta, store_layout, result)
    if result.problems:
        return result  # sums, ids and rows of a damaged store would only repeat the problems above
    result.problems += _check_totals(meta, store_layout, sums)
    result.problems += _check_loci(group, meta, store_layout)
    result.problems += _check_rejected(path, meta)
    if check_sources:
        _check_sources(meta, result)
        _check_sample(group, meta, store_layout, result)
    return result
