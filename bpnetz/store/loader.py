"""Stream a store into ``tf.data``: split selection, background sampling, jitter, reverse complement.

The store is never read one random row at a time (each such read decompresses a whole chunk). Instead:

* **cached** (the store's selected rows fit in RAM): the rows a subset can ever use are read once, block by
  block (a block is a shard, or a chunk in an unsharded store), into numpy arrays; every batch is then a fast
  in-memory gather;
* **streamed**: each epoch reads the blocks holding the epoch's rows, in a random block order, a group of blocks
  ahead on reader threads (decoded in place into two reused group buffers, see :mod:`bpnetz.store.shards`),
  and mixes the rows of a group in a shuffle buffer.

Both modes yield the same examples: the jitter and flip of a locus are drawn per (seed, epoch, locus), not per
batch position. No per-example Python: the producer crops whole batches of raw rows to their jittered windows
with one strided numpy gather per array, reading flipped rows from a reversed view (so the reverse complement
costs nothing extra), and one-hot encodes with one table lookup of 4-byte rows (complement included). Several
batches travel through ``tf.data`` as one element (the per-element cost of ``from_generator`` is ~0.6 ms), are
turned into float targets by a parallel graph map, and are split again. Outputs follow the model I/O contract
(see :func:`make_dataset`).
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bpnetz.config import Split
from bpnetz.errors import InputError
from bpnetz.genome import sequence
from bpnetz.store import schema
from bpnetz.store.shards import ShardDecoder

Subset = Literal["train", "val", "test", "all"]
SUBSETS = ("train", "val", "test", "all")
RC_MODES = ("none", "random", "double")
#: "draw": int(n_peaks × ratio) per task (afresh each epoch for train, one fixed draw otherwise);
#: "all": every background locus of the selected chromosomes; "none": peaks only.
BACKGROUND_MODES = ("draw", "all", "none")
#: loci per tf.data element (several batches travel together: the per-element cost of from_generator is ~0.6 ms)
ELEMENT_LOCI = 1024
#: fraction of the available memory a RAM cache may take when ``cache="auto"``.
CACHE_MEMORY_FRACTION = 0.4

#: InputErrors a stream met while producing batches. tf.data hands its consumer (Keras ``fit``, a prediction loop)
#: an UnknownError carrying a traceback instead; the CLI reports the original from here (:func:`batch_failure`).
_FAILURES: list[InputError] = []

# independent random streams per (seed, epoch)
_STREAM_BACKGROUND, _STREAM_ORDER, _STREAM_AUGMENT = 0, 1, 2


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


def crop_rows(x: np.ndarray, index: np.ndarray, offset: np.ndarray, length: int, flip: np.ndarray | None = None,
              flipped_tracks: np.ndarray | None = None) -> np.ndarray:
    """``x[index[i], offset[i] : offset[i] + length]`` for every i, as one aligned (B, length, …) array.

    Rows where ``flip`` is true come out reversed along positions, with their tracks (the trailing axis) in the
    order ``flipped_tracks`` (default: the stored order). The jitter crop is a gather from a sliding-window view
    of the rows; a flipped row is the same gather from the reversed view of the flattened rows, which reverses
    positions and tracks at once (for [+, -] pairs that is already the strand swap).
    """
    from numpy.lib.stride_tricks import sliding_window_view

    index, offset = np.asarray(index), np.asarray(offset)
    width = int(np.prod(x.shape[2:], dtype=np.int64))
    flat = np.ascontiguousarray(x).reshape(len(x), -1)  # (rows, positions·tracks), a view
    out = aligned_empty((len(index), length, *x.shape[2:]), x.dtype)
    rows = out.reshape(len(index), -1)
    windows = sliding_window_view(flat, length * width, axis=1)
    if flip is None or not np.any(flip):
        rows[...] = windows[index, offset * width]
        return out
    flip = np.asarray(flip, dtype=bool)
    forward, backward = ~flip, flip
    rows[forward] = windows[index[forward], offset[forward] * width]
    reversed_flat = flat[:, ::-1]  # a view: positions and tracks reversed
    start = (x.shape[1] - length - offset[backward]) * width
    rows[backward] = sliding_window_view(reversed_flat, length * width, axis=1)[index[backward], start]
    if x.ndim == 3:
        order = (x.shape[2] - 1 - np.asarray(flipped_tracks)) if flipped_tracks is not None \
            else np.arange(x.shape[2])[::-1]
        if not np.array_equal(order, np.arange(x.shape[2])):
            out[backward] = out[backward][:, :, order]
    return out


def keep_freed_memory() -> None:
    """Let glibc keep freed batch buffers for reuse instead of handing them back to the kernel.

    Every batch allocates fresh arrays of a few MB (numpy crops, then TensorFlow's copies). With glibc's defaults
    these come from mmap and each page faults when first written, which measured as half of the host-side cost
    per locus. A fixed mmap threshold (32 MiB, the maximum) and a high trim threshold make the buffers cycle
    through the heap. Process-wide, harmless (memory stays reusable), and a no-op where glibc is absent.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 1 << 30)


def available_memory() -> int:
    """Bytes of memory available to new allocations (psutil, else /proc/meminfo, else 4 GiB)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


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
        self._zarr_json = Path(self.path) / "zarr.json" if isinstance(store, (str, Path)) else None
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
        self._decoders = {name: ShardDecoder.for_array(self.group[name]) for name in ("seq", "signal", "bias")
                          if name in self.group}
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
            values = np.asarray(self.group[name][:])
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
                    target[at:at + n] = self.group[name][lo:lo + n]
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
        for b, s, e in tqdm(list(zip(blocks, starts, bounds)), desc="caching store in RAM", unit="block",
                            disable=not progress, leave=False):
            if e - s == self.block_rows(int(b)):  # the whole block: decode in place
                self.read_block_into(int(b), out, int(s))
                continue
            part = self.read_block(int(b), rows[s:e])
            for name, target in out.arrays().items():
                target[s:e] = part.arrays()[name]
        return out


# ------------------------------------------------------------------------------------------- locus selection


def subset_chroms(reader: StoreReader, split: Split | None, subset: Subset,
                  all_chroms: Sequence[str] | None) -> list[str]:
    """Chromosomes of a subset: from the split (train = all_chroms, default the store's, minus val and test)."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; expected one of {SUBSETS}")
    if subset == "all":
        return list(all_chroms) if all_chroms is not None else reader.chromosomes
    if split is None:
        raise InputError(f"the '{subset}' subset needs a split (splits.json fold).")
    return split.chroms(subset, list(all_chroms) if all_chroms is not None else reader.chromosomes)


class LocusSelection:
    """The loci a subset may use and the ones each epoch visits: every peak once, plus backgrounds per task."""

    def __init__(self, reader: StoreReader, chroms: Sequence[str], *, backgrounds: str, redraw: bool, seed: int):
        loci = reader.loci
        in_split = loci["chrom"].isin(set(chroms)).to_numpy()
        if not in_split.any():
            raise InputError(f"no loci on the requested chromosomes ({', '.join(chroms) or 'none'}); the store's "
                             f"loci are on {', '.join(reader.chromosomes)}.", path=reader.path,
                             fix="Check splits.json / --chroms against the chromosome names of the store.")
        kind = loci["kind"].to_numpy()
        task = loci["task"].to_numpy()
        peak_rows = np.flatnonzero(in_split & (kind == schema.KIND_PEAK))
        self.n_draw: dict[int, int] = {}
        background_rows: dict[int, np.ndarray] = {}
        if backgrounds != "none":
            for t, name in enumerate(reader.layout.tasks):
                rows = np.flatnonzero(in_split & (kind == schema.KIND_BACKGROUND) & (task == t))
                if backgrounds == "all":
                    background_rows[t], self.n_draw[t] = rows, len(rows)
                    continue
                ratio = reader.layout.background_ratio.get(name, reader.layout.background_ratio.get(str(t), 0.0))
                wanted = int(int(np.sum(task[peak_rows] == t)) * ratio)
                if wanted > len(rows):
                    warnings.warn(f"task {name}: {wanted} background loci wanted (peaks × ratio {ratio}) but the "
                                  f"selected chromosomes hold only {len(rows)}; using all of them.", stacklevel=3)
                if wanted:
                    background_rows[t], self.n_draw[t] = rows, min(wanted, len(rows))
        #: sorted store rows this selection may use (its "positions" index into this array)
        self.rows = np.unique(np.concatenate([peak_rows, *background_rows.values()]))
        if len(self.rows) == 0:
            raise InputError(f"the chromosomes {', '.join(chroms)} hold no peaks of this store.", path=reader.path,
                             fix="Check splits.json / --chroms.")
        self.peak_positions = np.searchsorted(self.rows, peak_rows)
        self.background_positions = {t: np.searchsorted(self.rows, r) for t, r in background_rows.items()}
        self.redraw = redraw
        self.seed = seed
        self.chroms = list(chroms)

    @property
    def n_examples(self) -> int:
        """Loci visited per epoch."""
        return len(self.peak_positions) + sum(self.n_draw.values())

    def epoch_positions(self, epoch: int) -> np.ndarray:
        """Sorted positions (into :attr:`rows`) of the loci of an epoch; backgrounds fixed unless ``redraw``."""
        rng = np.random.default_rng([self.seed, epoch if self.redraw else 0, _STREAM_BACKGROUND])
        drawn = [rng.choice(pos, size=self.n_draw[t], replace=False) if self.n_draw[t] < len(pos) else pos
                 for t, pos in self.background_positions.items()]
        return np.unique(np.concatenate([self.peak_positions, *drawn]))


# ------------------------------------------------------------------------------------------------- the stream


class LocusStream:
    """Batches of one subset of a store, regenerated (new backgrounds, order, jitter, flips) at every epoch.

    ``dataset()`` is the tf.data pipeline; each new iteration over it is the next epoch (epoch 0, 1, …), so Keras
    ``fit`` sees fresh backgrounds and augmentation each epoch, and the whole sequence is fixed by ``seed``.
    """

    def __init__(self, store: str | Path | StoreReader, split: Split | None, subset: Subset, *, batch_size: int,
                 all_chroms: Sequence[str] | None = None, jitter: bool | None = None,
                 reverse_complement: str = "none", backgrounds: str | None = None, shuffle: bool | None = None,
                 seed: int = 0, mnll_loss_sample_weight: float = 1.0, mnll_background_weight: float = 0.0,
                 orig_multi_loss: bool = False, cache: bool | str = "auto", shuffle_loci: int = 16384,
                 read_ahead: int = 2, batches_per_element: int | None = None,
                 progress: bool = False):
        if reverse_complement not in RC_MODES:
            raise ValueError(f"reverse_complement must be one of {RC_MODES}, got {reverse_complement!r}")
        backgrounds = backgrounds or ("draw" if subset in ("train", "val") else "none")
        if backgrounds not in BACKGROUND_MODES:
            raise ValueError(f"backgrounds must be one of {BACKGROUND_MODES}, got {backgrounds!r}")
        if batch_size < 1:
            raise InputError(f"the batch size must be at least 1, got {batch_size}.")
        self.reader = store if isinstance(store, StoreReader) else StoreReader(store)
        self.layout = self.reader.layout
        self.subset = subset
        self.batch_size = int(batch_size)
        self.jitter = subset == "train" if jitter is None else bool(jitter)
        self.reverse_complement = reverse_complement
        self.shuffle = subset == "train" if shuffle is None else bool(shuffle)
        self.seed = int(seed)
        self.orig_multi_loss = orig_multi_loss
        self.shuffle_loci = max(1, shuffle_loci)
        self.read_ahead = max(1, read_ahead)
        self.batches_per_element = max(1, batches_per_element or ELEMENT_LOCI // self.batch_size)
        chroms = subset_chroms(self.reader, split, subset, all_chroms)
        self.selection = LocusSelection(self.reader, chroms, backgrounds=backgrounds, redraw=subset == "train",
                                        seed=self.seed)
        kinds = self.reader.loci["kind"].to_numpy()[self.selection.rows]
        self._weights = np.where(kinds == schema.KIND_PEAK, mnll_loss_sample_weight,
                                 mnll_background_weight).astype(np.float32)
        self.cached = self._decide_cache(cache)
        self._cache = self.reader.read_rows(self.selection.rows, progress=progress) if self.cached else None
        self._epoch = 0
        self._free_buffers: list[tuple[RawRows, RawRows]] = []  # group buffer pairs no epoch is using
        self._buffers_lock = threading.Lock()
        self._track_swap = self.layout.strand_swap(self.layout.tracks)
        self._bias_swap = self.layout.strand_swap(self.layout.bias_tracks)

    def _decide_cache(self, cache: bool | str) -> bool:
        if cache == "auto":
            return len(self.selection.rows) * self.reader.bytes_per_locus <= CACHE_MEMORY_FRACTION * available_memory()
        if isinstance(cache, bool):
            return cache
        raise ValueError(f"cache must be 'auto', True or False, got {cache!r}")

    # ----------------------------------------------------------------------------------------------- sizes

    @property
    def n_loci(self) -> int:
        """Distinct loci per epoch."""
        return self.selection.n_examples

    @property
    def n_examples(self) -> int:
        """Examples per epoch (twice the loci with doubled reverse-complement batches)."""
        return self.n_loci * (2 if self.reverse_complement == "double" else 1)

    @property
    def n_batches(self) -> int:
        return math.ceil(self.n_loci / self.batch_size) * (2 if self.reverse_complement == "double" else 1)

    def loci(self) -> pd.DataFrame:
        """The locus table (with its store ``row``) in yield order; only for unshuffled subsets.

        With ``reverse_complement="double"`` every batch of these loci is followed by the same loci flipped.
        """
        if self.shuffle:
            raise ValueError("a shuffled stream has no fixed locus order; use with_index=True to get each row")
        rows = self.selection.rows[self.selection.epoch_positions(0)]
        return self.reader.loci.iloc[rows].reset_index(drop=True).assign(row=rows)

    # --------------------------------------------------------------------------------------------- elements

    def elements(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """The epoch's batches, several per element along a leading axis: ``sequence`` one-hot uint8
        (k, b, input_len, 4), ``signal`` and ``bias`` (k, b, output_len, ·) as stored and oriented, and ``row``,
        ``jitter``, ``flip``, ``weight`` (k, b). Full batches travel ``batches_per_element`` at a time; a batch
        that spans two groups of blocks, and the last, partial batch, travel alone."""
        positions = self.selection.epoch_positions(epoch)
        augmentation = self._augmentation(epoch)
        rng = np.random.default_rng([self.seed, epoch, _STREAM_ORDER])
        segments = self._cached_segments(positions, rng) if self.cached else self._streamed_segments(positions, rng)
        size, step = self.batch_size, self.batches_per_element * self.batch_size
        carry: list[Part] = []  # the pending batch's rows, copied out of their (reused) buffers
        for part in segments:
            begin = 0
            if carry:
                begin = min(size - sum(len(p) for p in carry), len(part))
                carry.append(part.slice(0, begin))
                if sum(len(p) for p in carry) < size:
                    carry[-1] = carry[-1].owned()
                    continue
                yield self._element(carry, augmentation)
                carry = []
            full = begin + (len(part) - begin) // size * size
            for start in range(begin, full, step):
                yield self._element([part.slice(start, min(start + step, full))], augmentation)
            if full < len(part):
                carry = [part.slice(full, len(part)).owned()]
        if carry:
            yield self._element(carry, augmentation)

    def _augmentation(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Jitter (int32) and flip (bool) of every selectable locus in an epoch, indexed by position."""
        n = len(self.selection.rows)
        rng = np.random.default_rng([self.seed, epoch, _STREAM_AUGMENT])
        max_jitter = self.layout.max_jitter
        jitter = (rng.integers(-max_jitter, max_jitter + 1, size=n, dtype=np.int32) if self.jitter
                  else np.zeros(n, np.int32))
        flip = rng.random(n) < 0.5 if self.reverse_complement == "random" else np.zeros(n, bool)
        return jitter, flip

    def _element(self, parts: list[Part], augmentation: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        """Crop, orient and one-hot encode the rows of ``parts`` into one element (see :meth:`elements`)."""
        jitter, flip = augmentation
        pos = np.concatenate([p.pos for p in parts])
        n = len(pos)
        shape = (n // self.batch_size, self.batch_size) if n % self.batch_size == 0 else (1, n)
        if self.reverse_complement != "double":
            return _stacked(self._crop(parts, pos, jitter, flip[pos]), shape)
        # the reference's doubled batches: every batch, then the same batch reverse-complemented
        forward = _stacked(self._crop(parts, pos, jitter, np.zeros(n, bool)), shape)
        flipped = _stacked(self._crop(parts, pos, jitter, np.ones(n, bool)), shape)
        return {name: np.stack([x, flipped[name]], axis=1).reshape(2 * shape[0], *x.shape[1:])
                for name, x in forward.items()}

    def _crop(self, parts: list[Part], pos: np.ndarray, jitter: np.ndarray,
              flip: np.ndarray) -> dict[str, np.ndarray]:
        """Flat (n, …) arrays of an element (``pos``: the parts' positions, ``flip`` per row): windows at each
        locus' jitter, flipped rows reverse-complemented."""
        lay = self.layout
        pieces: dict[str, list[np.ndarray]] = {}
        at = 0
        for part in parts:
            f = flip[at:at + len(part)]
            at += len(part)
            offset = lay.max_jitter + jitter[part.pos]
            cropped = {"seq": crop_rows(part.raw.seq, part.index, offset, lay.input_len, f),
                       "signal": crop_rows(part.raw.signal, part.index, offset, lay.output_len, f, self._track_swap)}
            if part.raw.bias is not None:
                cropped["bias"] = crop_rows(part.raw.bias, part.index, offset, lay.output_len, f, self._bias_swap)
            for name, x in cropped.items():
                pieces.setdefault(name, []).append(x)
        out = {name: xs[0] if len(xs) == 1 else np.concatenate(xs) for name, xs in pieces.items()}
        out["sequence"] = one_hot_oriented(out.pop("seq"), flip)
        out.update(row=self.selection.rows[pos].astype(np.int64), jitter=jitter[pos], flip=flip,
                   weight=self._weights[pos])
        return out

    def _cached_segments(self, positions: np.ndarray, rng: np.random.Generator) -> Iterator[Part]:
        """The whole epoch as one segment of the RAM cache (rows of the cache are positions)."""
        assert self._cache is not None
        order = rng.permutation(positions) if self.shuffle else positions
        yield Part(self._cache, order, order)

    def _streamed_segments(self, positions: np.ndarray, rng: np.random.Generator) -> Iterator[Part]:
        """The epoch's blocks (random order when shuffling), one group of blocks per segment: the shuffle buffer
        of at least ``shuffle_loci`` loci. While a group is consumed, the next one is decoded on reader threads
        into the other of two group buffers (a pair reused by later epochs, never shared by two live ones)."""
        rows = self.selection.rows[positions]
        size = self.reader.block_loci
        blocks, starts = np.unique(rows // size, return_index=True)
        spans = list(zip(blocks.tolist(), starts.tolist(), [*starts[1:].tolist(), len(rows)]))
        if self.shuffle:
            spans = [spans[i] for i in rng.permutation(len(spans))]
        per_group = max(1, -(-self.shuffle_loci // size)) if self.shuffle else 1
        groups = [spans[i:i + per_group] for i in range(0, len(spans), per_group)]
        buffers = self._take_buffers(min(per_group, len(spans)) * size)
        executor = ThreadPoolExecutor(max_workers=self.read_ahead, thread_name_prefix="bpnetz-read")
        try:
            pending = self._read_group(executor, groups[0], buffers[0]) if groups else []
            for g, group in enumerate(groups):
                for future in pending:
                    future.result()
                pending = self._read_group(executor, groups[g + 1], buffers[(g + 1) % 2]) if g + 1 < len(groups) \
                    else []
                index = np.concatenate([k * size + rows[s:e] - b * size for k, (b, s, e) in enumerate(group)])
                pos = np.concatenate([positions[s:e] for _, s, e in group])
                if self.shuffle:
                    mix = rng.permutation(len(pos))
                    index, pos = index[mix], pos[mix]
                yield Part(buffers[g % 2], index, pos)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            with self._buffers_lock:
                self._free_buffers.append(buffers)

    def _take_buffers(self, rows: int) -> tuple[RawRows, RawRows]:
        """A pair of group buffers of at least ``rows`` raw rows for one epoch: a free pair of this stream, else a
        new one. Epochs may overlap (an abandoned iterator's generator lives until it is collected)."""
        with self._buffers_lock:
            for i, pair in enumerate(self._free_buffers):
                if len(pair[0].seq) >= rows:
                    return self._free_buffers.pop(i)
        return self.reader.empty_rows(rows), self.reader.empty_rows(rows)

    def _read_group(self, executor: ThreadPoolExecutor, group: list[tuple[int, int, int]],
                    buffer: RawRows) -> list[Future[None]]:
        size = self.reader.block_loci
        return [executor.submit(self.reader.read_block_into, b, buffer, k * size) for k, (b, _, _) in enumerate(group)]

    # ----------------------------------------------------------------------------------------------- tf.data

    def dataset(self, *, with_index: bool = False) -> Any:
        """The tf.data pipeline: elements of several batches -> model inputs/targets (parallel map) -> batches.

        Yields ``(inputs, targets, sample_weights)`` per the model I/O contract, plus a fourth dict
        ``{"row", "jitter", "flip"}`` (store row, drawn jitter, reverse-complemented or not) with ``with_index``.
        Iterating the dataset again starts the next epoch.
        """
        import tensorflow as tf

        keep_freed_memory()
        ds = tf.data.Dataset.from_generator(self._next_epoch, output_signature=self._element_signature())
        # one map call per core from the start (AUTOTUNE ramps up too slowly for short epochs: measured 20% slower)
        ds = ds.map(model_io_fn(self.layout, orig_multi_loss=self.orig_multi_loss, with_index=with_index),
                    num_parallel_calls=max(2, os.cpu_count() or 1), deterministic=True)
        ds = ds.unbatch().apply(tf.data.experimental.assert_cardinality(self.n_batches)).prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = True
        options.threading.max_intra_op_parallelism = 1  # parallelism comes from the parallel map over elements
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def _next_epoch(self) -> Iterator[dict[str, np.ndarray]]:
        epoch, self._epoch = self._epoch, self._epoch + 1
        try:
            yield from self.elements(epoch)
        except InputError as err:
            _FAILURES.append(err)
            raise

    def _element_signature(self) -> dict[str, Any]:
        import tensorflow as tf

        lay = self.layout
        signature = {
            "sequence": tf.TensorSpec((None, None, lay.input_len, 4), tf.uint8),
            "signal": tf.TensorSpec((None, None, lay.output_len, lay.n_tracks), tf.as_dtype(self.reader.signal.dtype)),
            "row": tf.TensorSpec((None, None), tf.int64),
            "jitter": tf.TensorSpec((None, None), tf.int32),
            "flip": tf.TensorSpec((None, None), tf.bool),
            "weight": tf.TensorSpec((None, None), tf.float32),
        }
        if self.reader.bias is not None:
            signature["bias"] = tf.TensorSpec((None, None, lay.output_len, lay.n_bias),
                                              tf.as_dtype(self.reader.bias.dtype))
        return signature


@dataclass
class Part:
    """Rows of a raw buffer in yield order: ``index`` into ``raw``, ``pos`` the selection positions."""

    raw: RawRows
    index: np.ndarray
    pos: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def slice(self, start: int, stop: int) -> Part:
        return Part(self.raw, self.index[start:stop], self.pos[start:stop])

    def owned(self) -> Part:
        """The same rows copied out of the buffer (which the stream reuses for a later group)."""
        return Part(self.raw.take(self.index), np.arange(len(self.index)), self.pos)


def _stacked(arrays: dict[str, np.ndarray], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Flat (n, …) arrays reshaped to (batches, batch size, …) (views)."""
    return {name: x.reshape(*shape, *x.shape[1:]) for name, x in arrays.items()}


#: one-hot rows (4 uint8 each, read as one uint32) of the codes A C G T N, then of their complements
_ONE_HOT_ROWS = np.concatenate([sequence.one_hot(np.arange(sequence.N_CODE + 1), np.uint8),
                                sequence.one_hot(sequence.COMPLEMENT_CODE, np.uint8)]).view(np.uint32).ravel()


def one_hot_oriented(codes: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """One-hot uint8 (n, L, 4) of base codes (n, L), complemented in the rows where ``flip`` (N -> zeros).

    One lookup of a 4-byte row per base (the codes of flipped rows are looked up in the complement half of the
    table), ~4x cheaper than TensorFlow's gather of float rows. uint8 keeps host memory traffic and host-to-GPU
    copies 4x smaller; Keras casts the input to the model's dtype on the device.
    """
    shifted = codes + (sequence.N_CODE + 1) * np.asarray(flip, dtype=np.uint8)[:, None]
    out = aligned_empty(codes.shape, np.uint32)
    np.take(_ONE_HOT_ROWS, shifted, out=out, mode="clip")
    return out.view(np.uint8).reshape(*codes.shape, 4)


def model_io_fn(store_layout: schema.StoreLayout, *, orig_multi_loss: bool = False, with_index: bool = False) -> Any:
    """The graph function turning an element (cropped, oriented, one-hot) into ``(inputs, targets, weights[,
    index])``: float32 tracks, ``counts_bias`` and the ``logcounts`` targets, for any leading batch axes."""
    import tensorflow as tf

    lay = store_layout
    # track -> task membership, to sum a task's tracks into its total count
    membership = np.zeros((lay.n_tracks, len(lay.tasks)), np.float32)
    for i, track in enumerate(lay.tracks):
        membership[i, track.task] = 1.0
    task_matrix = tf.constant(membership)
    tracks_per_task = tf.constant(membership.sum(axis=0))

    def to_model_io(element: dict[str, Any]) -> tuple[Any, ...]:
        inputs = {"sequence": element["sequence"]}
        profile = tf.cast(element["signal"], tf.float32)
        if "bias" in element:
            profile_bias = tf.cast(element["bias"], tf.float32)
            inputs["profile_bias"] = profile_bias
            inputs["counts_bias"] = tf.math.log1p(tf.reduce_sum(profile_bias, axis=-2))
        totals = tf.reduce_sum(profile, axis=-2)
        logcounts = (tf.math.log1p(totals) if orig_multi_loss
                     else tf.math.log(tf.matmul(totals, task_matrix) + tracks_per_task))
        targets = {"profile": profile, "logcounts": logcounts}
        weights = {"profile": element["weight"], "logcounts": tf.ones_like(element["weight"])}
        if with_index:
            return inputs, targets, weights, {"row": element["row"], "jitter": element["jitter"],
                                              "flip": element["flip"]}
        return inputs, targets, weights

    return to_model_io


def batch_failure() -> InputError | None:
    """The latest InputError met while producing batches inside tf.data (e.g. a damaged shard), if any."""
    return _FAILURES[-1] if _FAILURES else None


def make_dataset(store: str | Path | StoreReader, split: Split | None, subset: Subset, *, batch_size: int,
                 with_index: bool = False, **options: Any) -> Any:
    """A tf.data.Dataset of one subset ("train", "val", "test" or "all") of a store for a split fold.

    Batches of ``(inputs, targets, sample_weights)``: inputs ``sequence`` one-hot uint8 (B, input_len, 4) (N =
    all zeros; Keras casts it to the model's dtype), ``profile_bias`` float32 (B, output_len, bias tracks) and
    ``counts_bias`` log(1 + totals) (B, bias tracks) when the store has controls; targets ``profile`` float32
    counts (B, output_len, tracks) and ``logcounts`` (B, tasks), or (B, tracks) with ``orig_multi_loss``.

    ``options`` are those of :class:`LocusStream`: all_chroms, jitter (default: train only), reverse_complement
    ("none", "random" per example with p=0.5, "double": every batch followed by its reverse complement),
    backgrounds ("draw" default for train/val, "all", "none" default for test/all), shuffle (default: train
    only), seed, mnll_loss_sample_weight, mnll_background_weight, orig_multi_loss, cache ("auto", True, False).
    """
    return LocusStream(store, split, subset, batch_size=batch_size, **options).dataset(with_index=with_index)
