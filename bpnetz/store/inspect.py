"""``bpnetz store info`` and ``bpnetz store verify``: describe a store from its metadata, and check it.

``info`` prints what the build recorded (no array is read). ``verify`` re-checks a store against that record:
every array has the schema's shape and dtype, every shard of every array exists on disk (a block that was never
written or was deleted shows up as missing rows), the per-track totals equal the arrays' sums, the locus counts
and the content id match the coordinates, and the source files, where still reachable, have the recorded size and
checksum.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.store import schema

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
        f"schema       {meta['schema_version']} (bpnetz {meta.get('bpnetz_version', '?')}), created "
        f"{meta.get('created', '?')}",
        f"content id   {meta.get('checksum', '?')}",
        f"lengths      input {store_layout.input_len}, output {store_layout.output_len}, max jitter "
        f"{store_layout.max_jitter} (stored seq {store_layout.seq_len}, profiles {store_layout.profile_len})",
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


def _missing_rows(array: Any) -> list[tuple[int, int]]:
    """Row ranges [lo, hi) of the array's shards (or chunks) that are absent from the store."""
    from zarr.core.sync import sync

    block = array.shards or array.chunks
    grid = [math.ceil(s / c) for s, c in zip(array.shape, block, strict=True)]
    missing = []
    for coords in itertools.product(*map(range, grid)):
        key = array.metadata.chunk_key_encoding.encode_chunk_key(coords)
        if not sync(array.store.exists(f"{array.path}/{key}" if array.path else key)):
            lo = coords[0] * block[0]
            missing.append((lo, min(lo + block[0], array.shape[0])))
    return missing


def _track_sums(array: Any, step: int) -> np.ndarray:
    """Per-track sums over loci and positions, read one block of rows at a time."""
    total = np.zeros(array.shape[-1], dtype=np.float64 if array.dtype.kind == "f" else np.int64)
    for lo in range(0, array.shape[0], step):
        total += array[lo:lo + step].sum(axis=(0, 1), dtype=total.dtype)
    return total


def _check_totals(group: Any, meta: dict[str, Any], store_layout: schema.StoreLayout) -> list[str]:
    problems = []
    for name, tracks in (("signal", store_layout.tracks), ("bias", store_layout.bias_tracks)):
        if not tracks or name not in group:
            continue
        recorded = meta.get("totals", {}).get(name)
        if recorded is None:
            problems.append(f"no recorded totals for '{name}'")
            continue
        array = group[name]
        sums = _track_sums(array, (array.shards or array.chunks)[0])
        for track, value in zip(tracks, sums, strict=True):
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
    from bpnetz.store.checksum import file_checksum

    for source in meta.get("sources", []):
        path = Path(source["path"])
        if not path.is_file():
            result.notes.append(f"source not reachable here, not checked: {path}")
            continue
        if path.stat().st_size != source["size"]:
            result.problems.append(f"source {path} has size {path.stat().st_size}, recorded {source['size']}")
        elif file_checksum(path)["checksum"] != source["checksum"]:
            result.problems.append(f"source {path} has changed since the build (checksum differs)")


def verify_store(path: str | Path, *, check_sources: bool = True) -> Verification:
    """Check a store against its schema and recorded metadata; see the module docstring."""
    from bpnetz.store.schema import REJECTED_BED

    group = schema.open_group(path)
    meta = schema.metadata(group)
    store_layout = schema.StoreLayout.from_dict(meta["layout"])
    result = Verification()
    n = int(meta.get("n_loci", -1))
    for name, (shape, dtypes) in _expected_arrays(store_layout, n, meta).items():
        if name not in group:
            result.problems.append(f"array '{name}' is missing")
            continue
        array = group[name]
        if tuple(array.shape) != shape or _dtype_name(array) not in dtypes:
            result.problems.append(f"array '{name}' has shape {tuple(array.shape)} and dtype {_dtype_name(array)}; "
                                   f"the schema and layout require {shape} and {' or '.join(dtypes)}")
            continue
        for lo, hi in _missing_rows(array):
            result.problems.append(f"array '{name}': rows {lo}-{hi - 1} were never written or are missing")
    if result.problems:
        return result  # sums and ids of a malformed store would only repeat the problems above
    result.problems += _check_totals(group, meta, store_layout)
    result.problems += _check_loci(group, meta, store_layout)
    rejected = Path(path) / REJECTED_BED
    if meta.get("n_rejected"):
        if not rejected.is_file():
            result.problems.append(f"{REJECTED_BED} is missing ({meta['n_rejected']} loci were rejected)")
        else:
            lines = sum(1 for line in open(rejected) if line.strip() and not line.startswith("#"))
            if lines != meta["n_rejected"]:
                result.problems.append(f"{REJECTED_BED} lists {lines} loci, the metadata records "
                                       f"{meta['n_rejected']}")
    if check_sources:
        _check_sources(meta, result)
    return result
