"""An open store: its metadata, layout, locus table, and block reads of the seq/signal/bias rows.

The store is never read one random row at a time (each such read decompresses a whole chunk): rows are read a
block at a time (a block is a shard, or a chunk in an unsharded store), decoded in place into aligned buffers
(:mod:`bpnetz.store.shards`); a store at a URL the same way, one whole-object GET per shard, fetched ahead
(:meth:`StoreReader.prefetch`). The memory helpers size the loader's RAM cache and keep its batch buffers cheap.
Framework-free: no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bpnetz.errors import InputError
from bpnetz.files.remote import is_url
from bpnetz.store import schema
from bpnetz.store.shards import ShardDecoder, read_checked

# ------------------------------------------------------------------------------------------------ raw reads


#: TensorFlow adopts a numpy buffer without copying it only when it is aligned to this many bytes
TENSOR_ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a :data:`TENSOR_ALIGNMENT` boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + TENSOR_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % TENSOR_ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


@dataclass
class RawRows:
    """Rows of a store as stored: base codes, signal counts and (optional) bias, uncropped."""

    seq: np.ndarray
    signal: np.ndarray
    bias: np.ndarray | None

    def take(self, index: np.ndarray) -> RawRows:
        return RawRows(self.seq[index], self.signal[index], None if self.bias is None else self.bias[index])

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by store name (``bias`` only when present)."""
        named = {"seq": self.seq, "signal": self.signal}
        return named if self.bias is None else {**named, "bias": self.bias}


#: blocks fetched ahead while a whole selection is read into RAM (a store in object storage: one GET per shard)
READ_AHEAD_BLOCKS = 8


class StoreReader:
    """An open store: its metadata, layout, locus table and block reads of the seq/signal/bias rows.

    The reader pins the store it opened: its content id and creation time (the ``bpnetz`` attribute) and the
    identity (inode, mtime) of its ``zarr.json``. :meth:`check_unchanged` (after every block read and by callers
    at the end of a run) fails with an InputError when the path now holds another store (``build --overwrite``
    swapped one in): a prediction never mixes two stores. The check costs one ``stat`` while nothing changed.
    """

    def __init__(self, store: str | Path | Any):
        self.group = schema.open_group(store) if isinstance(store, (str, Path)) else store
        self.path = str(store) if isinstance(store, (str, Path)) else str(getattr(self.group.store, "root", "?"))
        self.meta = schema.metadata(self.group)
        local = isinstance(store, Path) or (isinstance(store, str) and not is_url(store))
        self._zarr_json = Path(self.path) / "zarr.json" if local else None  # a store at a URL never changes
        if self._zarr_json is not None and not self._zarr_json.is_file():
            self._zarr_json = None  # a remote store: not pinned
        self._pinned_stat = self._stat()
        self.layout = schema.layout(self.group)
        self.seq = self.group["seq"]
        self.signal = self.group["signal"]
        self.bias = self.group["bias"] if self.layout.n_bias and "bias" in self.group else None
        if self.layout.n_bias and self.bias is None:
            raise InputError(f"the store layout lists {self.layout.n_bias} bias tracks but has no 'bias' array.",
                             path=self.path, fix="Rebuild the store with 'bpnetz build'.")
        self.n_loci = int(self.seq.shape[0])
        #: loci per read: one shard along ``locus`` (one chunk when unsharded). A whole shard is one file read;
        #: reading its chunks one by one costs a byte-range read plus Zarr's per-call overhead each (measured
        #: 1.5x slower for 256-locus chunks).
        shards = getattr(self.seq, "shards", None)
        self.block_loci = int((shards or self.seq.chunks)[0])
        #: the store wrote every chunk: an absent shard or chunk is damage (see schema.CHUNK_GUARANTEES)
        self.all_written = schema.chunk_guarantees(self.meta)["all_written"]
        self._decoders = {name: ShardDecoder.for_array(self.group[name], all_written=self.all_written)
                          for name in ("seq", "signal", "bias") if name in self.group}
        self.loci = self._read_loci()

    def _stat(self) -> tuple[int, int] | None:
        if self._zarr_json is None:
            return None
        try:
            stat = self._zarr_json.stat()
        except OSError:
            return (-1, -1)
        return stat.st_ino, stat.st_mtime_ns

    def _changed(self, why: str) -> InputError:
        return InputError(f"the store changed while it was being read ({why}; it was rebuilt or replaced, e.g. by "
                          "'bpnetz build --overwrite'), so results would mix two stores.", path=self.path,
                          fix="Rerun the command once the store is no longer being rebuilt.")

    def check_unchanged(self) -> None:
        """Raise an InputError when the store path no longer holds the store this reader opened."""
        stat = self._stat()
        if stat == self._pinned_stat:
            return
        try:
            node = json.loads(self._zarr_json.read_text())  # type: ignore[union-attr]
        except (OSError, ValueError):
            raise self._changed("it is gone or unreadable now") from None
        meta = (node.get("attributes") or {}).get(schema.ATTR_KEY) or {}
        pinned = (self.meta.get("checksum"), self.meta.get("created"), self.meta.get("build_key"))
        if (meta.get("checksum"), meta.get("created"), meta.get("build_key")) != pinned:
            raise self._changed(f"content id {self.meta.get('checksum')} when opened, {meta.get('checksum')} now")
        self._pinned_stat = stat

    def _read_loci(self) -> pd.DataFrame:
        columns = {}
        for name, dtype in schema.LOCUS_COORDS.items():
            values = read_checked(self.group[name], 0, int(self.group[name].shape[0]), all_written=self.all_written)
            columns[name] = values.astype(object) if dtype is str else values.astype(dtype)
        table = pd.DataFrame(columns)
        if len(table) != self.n_loci:
            raise InputError(f"the locus coordinates hold {len(table)} loci but 'seq' holds {self.n_loci}.",
                             path=self.path, fix="Rebuild the store with 'bpnetz build'.")
        return table

    @property
    def chromosomes(self) -> list[str]:
        """Chromosomes of the store's loci, in order of first appearance."""
        return list(pd.unique(self.loci["chrom"]))

    @property
    def bytes_per_locus(self) -> int:
        row = self.seq.dtype.itemsize * self.layout.seq_len
        row += self.signal.dtype.itemsize * self.layout.profile_len * self.layout.n_tracks
        if self.bias is not None:
            row += self.bias.dtype.itemsize * self.layout.profile_len * self.layout.n_bias
        return row

    def block_rows(self, block: int) -> int:
        """Rows in a block (the last one may be short)."""
        return min(self.block_loci, self.n_loci - block * self.block_loci)

    def empty_rows(self, n: int) -> RawRows:
        """Uninitialised, aligned arrays for ``n`` raw rows."""
        return RawRows(*(None if array is None else aligned_empty((n, *array.shape[1:]), array.dtype)
                         for array in (self.seq, self.signal, self.bias)))

    def prefetch(self, blocks: list[int]) -> None:
        """Start fetching the shards of these blocks (a store in object storage; nothing to do for a local one)."""
        for decoder in self._decoders.values():
            if decoder is not None and self.block_loci == decoder.shard_rows:
                decoder.prefetch(blocks)

    def read_block_into(self, block: int, out: RawRows, at: int) -> None:
        """Decode every row of ``block`` into ``out`` at rows ``[at, at + block_rows)``."""
        lo = block * self.block_loci
        n = self.block_rows(block)
        try:
            for name, target in out.arrays().items():
                decoder = self._decoders[name]
                if decoder is not None and self.block_loci == decoder.shard_rows:
                    decoder.read_into(block, target[at:at + n])
                else:
                    target[at:at + n] = read_checked(self.group[name], lo, lo + n,
                                                      all_written=self.all_written)
        except Exception:
            self.check_unchanged()  # a read that failed because the store was swapped says so
            raise
        self.check_unchanged()

    def read_block(self, block: int, rows: np.ndarray | None = None) -> RawRows:
        """Rows of one block (``rows``: sorted store rows inside it; all of them when None)."""
        raw = self.empty_rows(self.block_rows(block))
        self.read_block_into(block, raw, 0)
        if rows is None or len(rows) == len(raw.seq):
            return raw
        return raw.take(np.asarray(rows) - block * self.block_loci)

    def read_rows(self, rows: np.ndarray, *, progress: bool = False) -> RawRows:
        """Sorted store rows, read block by block (never row by row)."""
        from tqdm.auto import tqdm

        out = self.empty_rows(len(rows))
        blocks, starts = np.unique(rows // self.block_loci, return_index=True)
        bounds = [*starts[1:], len(rows)]
        self.prefetch([int(b) for b in blocks[:READ_AHEAD_BLOCKS]])
        for i, (b, s, e) in enumerate(tqdm(list(zip(blocks, starts, bounds)), desc="caching store in RAM",
                                           unit="block", disable=not progress, leave=False)):
            if i + READ_AHEAD_BLOCKS < len(blocks):
                self.prefetch([int(blocks[i + READ_AHEAD_BLOCKS])])
            if e - s == self.block_rows(int(b)):  # the whole block: decode in place
                self.read_block_into(int(b), out, int(s))
                continue
            part = self.read_block(int(b), rows[s:e])
            for name, target in out.arrays().items():
                target[s:e] = part.arrays()[name]
        return out
