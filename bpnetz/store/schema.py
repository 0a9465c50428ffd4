"""The store schema (version 1): the single source of truth for array names, dtypes, chunking and attributes.

A store is a Zarr (format 3) group::

    seq      (locus, seq_pos)          uint8    base codes A=0 C=1 G=2 T=3 N=4, seq_pos = input_len + 2·max_jitter
    signal   (locus, pos, track)       TRACK_DTYPES      pos = output_len + 2·max_jitter; tracks = tasks × strands
    bias     (locus, pos, bias_track)  TRACK_DTYPES      control tracks (raw, then smoothed copies); absent without
                                                         controls

Track arrays hold whole-numbered data (counts) in the narrowest of uint8/uint16/int32 that fits, others as float32;
the metadata records the choice (``signal_dtype``, ``bias_dtype``).
    chrom, start, end, summit, kind, task, name, source_file, source_line   (locus,)  locus coordinates

Window convention: a locus with summit ``s`` has ``seq`` over
``[s - input_len//2 - max_jitter, s - input_len//2 - max_jitter + seq_len)`` and ``signal``/``bias`` over
``[s - output_len//2 - max_jitter, … + profile_len)``. Jitter ``j`` in [-max_jitter, max_jitter] selects
``seq[:, max_jitter + j : max_jitter + j + input_len]`` (likewise for signal/bias with output_len).

``start``/``end`` are the source BED interval; ``kind`` is 0 for peaks and 1 for background loci; ``task`` is
the task index; ``source_file`` indexes ``attrs["bpnetz"]["sources"]``; ``source_line`` is 1-based.
All metadata lives under the group attribute ``bpnetz`` (see :class:`StoreLayout` and :func:`metadata`).

Chunk integrity (``attrs["bpnetz"]["chunks"]``, see :func:`chunk_guarantees`): a store written by ``bpnetz build``
records ``{"checksum": "crc32c", "all_written": true}``: every inner chunk of every array ends with its CRC32C
(the Zarr v3 ``crc32c`` codec, checked on every read) and every chunk exists on disk (written even when it holds
only the fill value), so a missing shard or chunk is damage, never zeros. Stores built before this record lack the
key: they stay readable, without chunk checksums, and an absent chunk there reads as the fill value.

Stores at URLs (``s3://``, ``gs://``, ``http(s)://``; see docs/stores.md): :func:`open_group` opens one read-only
and only once its commit marker (:data:`COMMIT_MARKER`, written last by the build, naming the content id and build
key) exists and matches the metadata; objects without a marker are an uncommitted store, refused with the fix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.errors import InputError
from bpnetz.files.remote import is_url, join, list_children, read_object, storage_error

SCHEMA_VERSION = 1
ATTR_KEY = "bpnetz"
#: written last into a store at a URL: readers open only a store that has it (object storage has no rename)
COMMIT_MARKER = "bpnetz-commit.json"

KIND_PEAK = 0
KIND_BACKGROUND = 1
KIND_NAMES = ("peak", "background")

#: dtypes a signal or bias array may have
TRACK_DTYPES = ("uint8", "uint16", "int32", "float32")

SEQ_DIMS = ("locus", "seq_pos")
TRACK_DIMS = ("locus", "pos", "track")
BIAS_DIMS = ("locus", "pos", "bias_track")
LOCUS_DIM = "locus"

#: locus coordinate arrays and their dtypes (``str`` = variable-length UTF-8).
LOCUS_COORDS: dict[str, Any] = {
    "chrom": str,
    "start": np.int64,
    "end": np.int64,
    "summit": np.int64,
    "kind": np.uint8,
    "task": np.int16,
    "name": str,
    "source_file": np.int16,
    "source_line": np.int64,
}

#: loci per chunk along ``locus`` (whole rows along the other axes), and chunks per shard.
CHUNK_LOCI = 256
#: file inside a store listing the loci that could not be stored, with the reason
REJECTED_BED = "rejected_loci.bed"
CHUNKS_PER_SHARD = 16
SHARD_LOCI = CHUNK_LOCI * CHUNKS_PER_SHARD

#: key of the chunk-integrity record in the store metadata, and what ``bpnetz build`` writes there
CHUNKS_KEY = "chunks"
CHUNK_GUARANTEES: dict[str, Any] = {"checksum": "crc32c", "all_written": True}


@dataclass(frozen=True)
class Track:
    """One signal or bias track: its task, strand ('+', '-' or '.'), source bigWig and optional smoothing."""

    name: str
    task: int
    strand: str
    source: str
    smoothing: tuple[float, int] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Track:
        smoothing = tuple(d["smoothing"]) if d.get("smoothing") else None
        return cls(name=d["name"], task=int(d["task"]), strand=d["strand"], source=d["source"],
                   smoothing=smoothing)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StoreLayout:
    """Shapes and track structure of a store: everything a reader needs besides the arrays."""

    input_len: int
    output_len: int
    max_jitter: int
    tasks: list[str]
    tracks: list[Track]
    bias_tracks: list[Track] = field(default_factory=list)
    background_ratio: dict[str, float] = field(default_factory=dict)

    @property
    def seq_len(self) -> int:
        return self.input_len + 2 * self.max_jitter

    @property
    def profile_len(self) -> int:
        return self.output_len + 2 * self.max_jitter

    @property
    def n_tracks(self) -> int:
        return len(self.tracks)

    @property
    def n_bias(self) -> int:
        return len(self.bias_tracks)

    def task_tracks(self, task: int) -> list[int]:
        """Indices of the signal tracks of a task."""
        return [i for i, t in enumerate(self.tracks) if t.task == task]

    def task_bias_tracks(self, task: int) -> list[int]:
        """Indices of the bias tracks of a task."""
        return [i for i, t in enumerate(self.bias_tracks) if t.task == task]

    def strand_swap(self, tracks: list[Track]) -> np.ndarray:
        """Permutation of track indices that swaps + and - strands within each task and source pairing.

        Applied with the position reversal, it maps a stranded profile to the reverse-complement strand.
        A '+' track pairs with the '-' track of the same task and smoothing; unstranded tracks map to themselves.
        """
        perm = np.arange(len(tracks))
        for i, t in enumerate(tracks):
            if t.strand in "+-":
                other = "-" if t.strand == "+" else "+"
                mates = [k for k, u in enumerate(tracks)
                         if u.task == t.task and u.strand == other and u.smoothing == t.smoothing]
                if mates:
                    perm[i] = mates[0]
        return perm

    def seq_window(self, summit: int) -> tuple[int, int]:
        """Genomic [start, end) of the stored sequence row of a locus with this summit."""
        start = summit - self.input_len // 2 - self.max_jitter
        return start, start + self.seq_len

    def profile_window(self, summit: int) -> tuple[int, int]:
        """Genomic [start, end) of the stored signal/bias rows of a locus with this summit."""
        start = summit - self.output_len // 2 - self.max_jitter
        return start, start + self.profile_len

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoreLayout:
        return cls(input_len=int(d["input_len"]), output_len=int(d["output_len"]),
                   max_jitter=int(d["max_jitter"]), tasks=list(d["tasks"]),
                   tracks=[Track.from_dict(t) for t in d["tracks"]],
                   bias_tracks=[Track.from_dict(t) for t in d.get("bias_tracks", [])],
                   background_ratio={str(k): float(v) for k, v in d.get("background_ratio", {}).items()})


def metadata(group: Any) -> dict[str, Any]:
    """The ``bpnetz`` attribute of an open store group, checked for the schema version."""
    path = getattr(getattr(group, "store", None), "root", group)
    meta = dict(group.attrs).get(ATTR_KEY)
    if meta is None:
        raise InputError("not a bpnetz store (no 'bpnetz' attributes).", path=path,
                         fix="Build one with 'bpnetz build'.")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"store schema version {meta.get('schema_version')} is not supported by this bpnetz "
                         f"(schema {SCHEMA_VERSION}).", path=path, fix="Rebuild the store with this version.")
    return meta


def chunk_guarantees(meta: dict[str, Any]) -> dict[str, Any]:
    """``{"checksum": "crc32c" | None, "all_written": bool}`` of a store's metadata (an older store: neither)."""
    recorded = meta.get(CHUNKS_KEY) or {}
    return {"checksum": recorded.get("checksum"), "all_written": bool(recorded.get("all_written", False))}


def layout(group: Any) -> StoreLayout:
    """The :class:`StoreLayout` of an open store group."""
    return StoreLayout.from_dict(metadata(group)["layout"])


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a Zarr group with the ``bpnetz`` attribute (any schema version):
    what ``bpnetz build --overwrite`` may replace."""
    try:
        node = json.loads((Path(path) / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(node, dict) and node.get("node_type") == "group" and ATTR_KEY in (node.get("attributes") or {})


def open_group(path: str | Path, mode: str = "r") -> Any:
    """Open a store's root Zarr group (read-only by default), with a clear error when it is not a store. A URL
    opens only a committed store (see :func:`open_remote_group`)."""
    import zarr

    path_s = str(path)
    if is_url(path_s):
        return open_remote_group(path_s)
    if not Path(path_s).exists():
        partial = Path(path_s + ".partial")
        hint = (f" A partial build exists at {partial}: rerun the same 'bpnetz build' command to resume it."
                if partial.exists() else " Build it with 'bpnetz build'.")
        raise InputError("store does not exist." + hint, path=path_s)
    try:
        group = zarr.open_group(path_s, mode=mode, zarr_format=3)
    except Exception as err:  # noqa: BLE001 (zarr raises several types for "not a group")
        raise InputError(f"cannot open as a Zarr v3 group ({type(err).__name__}: {err}).", path=path_s,
                         fix="Point to a store written by 'bpnetz build'.") from None
    metadata(group)
    return group


def commit_record(url: str) -> dict[str, Any] | None:
    """The commit marker of a store at a URL (None: not committed)."""
    data = read_object(join(url, COMMIT_MARKER))
    if data is None:
        return None
    try:
        return dict(json.loads(data))
    except (ValueError, TypeError):
        raise InputError(f"the commit marker {COMMIT_MARKER} is damaged.", path=url,
                         fix="Rebuild the store with 'bpnetz build' under a new name.") from None


def open_remote_group(url: str) -> Any:
    """The root group of the committed store at ``url``, opened read-only (a store there is never changed in
    place, so a reader needs no write permission and never sees a partial store)."""
    import zarr
    from zarr.storage import FsspecStore

    url = url.rstrip("/")
    record = commit_record(url)
    if record is None:
        if list_children(url):  # objects there, but no marker
            raise InputError("is an uncommitted store: a build is writing it, or was interrupted before its "
                             f"commit marker {COMMIT_MARKER} (written last).", path=url,
                             fix="Wait for that build to finish, or rerun the same 'bpnetz build' to resume it.")
        raise InputError("store does not exist.", path=url, fix="Build it with 'bpnetz build --output URL'.")
    try:
        group = zarr.open_group(FsspecStore.from_url(url, read_only=True), mode="r", zarr_format=3)
    except Exception as err:  # noqa: BLE001
        raise storage_error(err, url, "opening the store") from None
    meta = metadata(group)
    if (meta.get("checksum"), meta.get("build_key")) != (record.get("checksum"), record.get("build_key")):
        raise InputError(f"its metadata (content id {meta.get('checksum')}) does not match its commit marker "
                         f"({record.get('checksum')}): the store was changed after it was committed.", path=url,
                         fix="Rebuild it with 'bpnetz build' under a new name.")
    return group
