"""Stream a store into ``tf.data``: split selection, background sampling, jitter, reverse complement.

The store is never read one random row at a time (each such read decompresses a whole chunk). Instead:

* **cached** (the store's selected rows fit in RAM): the rows a subset can ever use are read once, block by
  block (a block is a shard, or a chunk in an unsharded store), into numpy arrays; every batch is then a fast
  in-memory gather;
* **streamed**: each epoch reads the blocks holding the epoch's rows, in a random block order, ahead on reader
  threads, and mixes rows across several blocks in a shuffle buffer.

Both modes yield the same examples: the jitter and flip of a locus are drawn per (seed, epoch, locus), not per
batch position. No per-example Python: the producer crops a whole batch of raw rows (base codes, counts) to their
jittered windows with one strided numpy copy; reverse complement, one-hot encoding, ``counts_bias`` and the
log-count targets are vectorised tensor ops on whole batches in the tf.data graph, mapped in parallel. Outputs
follow the model I/O contract (see :func:`make_dataset`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bpnetz.config import Split
from bpnetz.errors import InputError
from bpnetz.store import schema

Subset = Literal["train", "val", "test", "all"]
SUBSETS = ("train", "val", "test", "all")
RC_MODES = ("none", "random", "double")
#: "draw": int(n_peaks × ratio) per task (afresh each epoch for train, one fixed draw otherwise);
#: "all": every background locus of the selected chromosomes; "none": peaks only.
BACKGROUND_MODES = ("draw", "all", "none")
#: fraction of the available memory a RAM cache may take when ``cache="auto"``.
CACHE_MEMORY_FRACTION = 0.4

# independent random streams per (seed, epoch)
_STREAM_BACKGROUND, _STREAM_ORDER, _STREAM_AUGMENT = 0, 1, 2


# ------------------------------------------------------------------------------------------------ raw reads


@dataclass
class RawRows:
    """Rows of a store as stored: base codes, signal counts and (optional) bias, uncropped."""

    seq: np.ndarray
    signal: np.ndarray
    bias: np.ndarray | None

    def take(self, index: np.ndarray) -> RawRows:
        return RawRows(self.seq[index], self.signal[index], None if self.bias is None else self.bias[index])

    @staticmethod
    def concatenate(parts: Sequence[RawRows]) -> RawRows:
        bias = None if parts[0].bias is None else np.concatenate([p.bias for p in parts])  # type: ignore[misc]
        return RawRows(np.concatenate([p.seq for p in parts]), np.concatenate([p.signal for p in parts]), bias)


def crop_rows(x: np.ndarray, index: np.ndarray, offset: np.ndarray, length: int) -> np.ndarray:
    """``x[index[i], offset[i] : offset[i] + length]`` for every i, as one contiguous (B, length, …) copy.

    The jitter crop: a gather from a sliding-window view of the rows, so a batch costs one memory copy.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    width = int(np.prod(x.shape[2:], dtype=np.int64))
    flat = np.ascontiguousarray(x).reshape(len(x), -1)  # (rows, positions·tracks), a view
    windows = sliding_window_view(flat, length * width, axis=1)
    return windows[index, np.asarray(offset) * width].reshape(len(index), length, *x.shape[2:])


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
    """An open store: its metadata, layout, locus table and block reads of the seq/signal/bias rows."""

    def __init__(self, store: str | Path | Any):
        self.group = schema.open_group(store) if isinstance(store, (str, Path)) else store
        self.path = str(store) if isinstance(store, (str, Path)) else str(getattr(self.group.store, "root", "?"))
        self.meta = schema.metadata(self.group)
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
        self.loci = self._read_loci()

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

    def read_block(self, block: int, rows: np.ndarray | None = None) -> RawRows:
        """Rows of one block (``rows``: sorted store rows inside it; all of them when None)."""
        lo = block * self.block_loci
        hi = min(lo + self.block_loci, self.n_loci)
        raw = RawRows(np.asarray(self.seq[lo:hi]), np.asarray(self.signal[lo:hi]),
                      None if self.bias is None else np.asarray(self.bias[lo:hi]))
        return raw if rows is None or len(rows) == hi - lo else raw.take(np.asarray(rows) - lo)

    def read_rows(self, rows: np.ndarray, *, progress: bool = False) -> RawRows:
        """Sorted store rows, read block by block (never row by row)."""
        from tqdm.auto import tqdm

        blocks, starts = np.unique(rows // self.block_loci, return_index=True)
        bounds = [*starts[1:], len(rows)]
        parts = [self.read_block(int(b), rows[s:e])
                 for b, s, e in tqdm(list(zip(blocks, starts, bounds)), desc="caching store in RAM", unit="block",
                                     disable=not progress, leave=False)]
        if not parts:
            return RawRows(np.zeros((0, self.layout.seq_len), self.seq.dtype),
                           np.zeros((0, self.layout.profile_len, self.layout.n_tracks), self.signal.dtype),
                           None if self.bias is None else
                           np.zeros((0, self.layout.profile_len, self.layout.n_bias), self.bias.dtype))
        return RawRows.concatenate(parts)


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
                 read_ahead: int = 2, progress: bool = False):
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
        chroms = subset_chroms(self.reader, split, subset, all_chroms)
        self.selection = LocusSelection(self.reader, chroms, backgrounds=backgrounds, redraw=subset == "train",
                                        seed=self.seed)
        kinds = self.reader.loci["kind"].to_numpy()[self.selection.rows]
        self._weights = np.where(kinds == schema.KIND_PEAK, mnll_loss_sample_weight,
                                 mnll_background_weight).astype(np.float32)
        self.cached = self._decide_cache(cache)
        self._cache = self.reader.read_rows(self.selection.rows, progress=progress) if self.cached else None
        self._epoch = 0

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

    # ----------------------------------------------------------------------------------------- raw batches

    def batches(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """Raw batches of an epoch: rows cropped to their jittered windows, plus each locus' store row, jitter,
        flip (applied in the graph) and profile weight."""
        positions = self.selection.epoch_positions(epoch)
        jitter, flip = self._augmentation(epoch)
        lay = self.layout
        source = self._cached_batches if self.cached else self._streamed_batches
        for pos, raw, index in source(positions, np.random.default_rng([self.seed, epoch, _STREAM_ORDER])):
            offset = lay.max_jitter + jitter[pos]
            batch = {"seq": crop_rows(raw.seq, index, offset, lay.input_len),
                     "signal": crop_rows(raw.signal, index, offset, lay.output_len),
                     "row": self.selection.rows[pos].astype(np.int64), "jitter": jitter[pos], "flip": flip[pos],
                     "weight": self._weights[pos]}
            if raw.bias is not None:
                batch["bias"] = crop_rows(raw.bias, index, offset, lay.output_len)
            yield batch

    def _augmentation(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Jitter (int32) and flip (bool) of every selectable locus in an epoch, indexed by position."""
        n = len(self.selection.rows)
        rng = np.random.default_rng([self.seed, epoch, _STREAM_AUGMENT])
        max_jitter = self.layout.max_jitter
        jitter = (rng.integers(-max_jitter, max_jitter + 1, size=n, dtype=np.int32) if self.jitter
                  else np.zeros(n, np.int32))
        flip = rng.random(n) < 0.5 if self.reverse_complement == "random" else np.zeros(n, bool)
        return jitter, flip

    def _cached_batches(self, positions: np.ndarray,
                        rng: np.random.Generator) -> Iterator[tuple[np.ndarray, RawRows, np.ndarray]]:
        """(positions, rows, index of the positions in rows) per batch, gathered from the RAM cache."""
        assert self._cache is not None
        order = rng.permutation(positions) if self.shuffle else positions
        for i in range(0, len(order), self.batch_size):
            pos = order[i:i + self.batch_size]
            yield pos, self._cache, pos

    def _streamed_batches(self, positions: np.ndarray,
                          rng: np.random.Generator) -> Iterator[tuple[np.ndarray, RawRows, np.ndarray]]:
        """Read the epoch's blocks (random order when shuffling) and mix their rows in a shuffle buffer of at
        least ``shuffle_loci`` loci (whole blocks, plus the rows left from the previous fill)."""
        rows = self.selection.rows[positions]
        blocks, starts = np.unique(rows // self.reader.block_loci, return_index=True)
        spans = list(zip(blocks.tolist(), starts.tolist(), [*starts[1:].tolist(), len(rows)]))
        if self.shuffle:
            spans = [spans[i] for i in rng.permutation(len(spans))]
        group = max(1, -(-self.shuffle_loci // self.reader.block_loci)) if self.shuffle else 1
        parts: list[RawRows] = []
        part_pos: list[np.ndarray] = []
        for k, raw in enumerate(self._read_ahead(spans, rows)):
            _, s, e = spans[k]
            parts.append(raw)
            part_pos.append(positions[s:e])
            if len(parts) < group and k + 1 < len(spans):
                continue
            # the shuffle buffer: this group of blocks plus the rows left over from the previous group
            buffer, buffer_pos = RawRows.concatenate(parts), np.concatenate(part_pos)
            order = rng.permutation(len(buffer_pos)) if self.shuffle else np.arange(len(buffer_pos))
            full = len(order) - len(order) % self.batch_size
            for j in range(0, full, self.batch_size):
                index = order[j:j + self.batch_size]
                yield buffer_pos[index], buffer, index
            rest = order[full:]
            parts, part_pos = [buffer.take(rest)], [buffer_pos[rest]]
        if parts and len(part_pos[0]):
            yield part_pos[0], parts[0], np.arange(len(part_pos[0]))  # the last, partial batch

    def _read_ahead(self, spans: list[tuple[int, int, int]], rows: np.ndarray) -> Iterator[RawRows]:
        """The blocks of ``spans`` in order, with up to ``read_ahead`` block reads in flight on threads."""
        executor = ThreadPoolExecutor(max_workers=self.read_ahead, thread_name_prefix="bpnetz-read")
        try:
            todo = iter(spans)
            pending: deque[Future[RawRows]] = deque()
            for _ in range(self.read_ahead):
                self._submit(executor, pending, next(todo, None), rows)
            while pending:
                raw = pending.popleft().result()
                self._submit(executor, pending, next(todo, None), rows)
                yield raw
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

    def _submit(self, executor: ThreadPoolExecutor, pending: deque[Future[RawRows]],
                span: tuple[int, int, int] | None, rows: np.ndarray) -> None:
        if span is not None:
            block, s, e = span
            pending.append(executor.submit(self.reader.read_block, block, rows[s:e]))

    # ----------------------------------------------------------------------------------------------- tf.data

    def dataset(self, *, with_index: bool = False) -> Any:
        """The tf.data pipeline: raw batches -> (doubled with their reverse complement) -> model inputs/targets.

        Yields ``(inputs, targets, sample_weights)`` per the model I/O contract, plus a fourth dict
        ``{"row", "jitter", "flip"}`` (store row, drawn jitter, reverse-complemented or not) with ``with_index``.
        Iterating the dataset again starts the next epoch.
        """
        import tensorflow as tf

        keep_freed_memory()
        ds = tf.data.Dataset.from_generator(self._next_epoch, output_signature=self._raw_signature())
        if self.reverse_complement == "double":
            ds = ds.flat_map(_followed_by_reverse_complement)
        # one map call per core from the start (AUTOTUNE ramps up too slowly for short epochs: measured 20% slower)
        ds = ds.map(model_io_fn(self.layout, orig_multi_loss=self.orig_multi_loss, with_index=with_index),
                    num_parallel_calls=max(2, os.cpu_count() or 1), deterministic=True)
        ds = ds.apply(tf.data.experimental.assert_cardinality(self.n_batches)).prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = True
        options.threading.max_intra_op_parallelism = 1  # parallelism comes from the parallel map over batches
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def _next_epoch(self) -> Iterator[dict[str, np.ndarray]]:
        epoch, self._epoch = self._epoch, self._epoch + 1
        yield from self.batches(epoch)

    def _raw_signature(self) -> dict[str, Any]:
        import tensorflow as tf

        lay = self.layout
        signature = {
            "seq": tf.TensorSpec((None, lay.input_len), tf.as_dtype(self.reader.seq.dtype)),
            "signal": tf.TensorSpec((None, lay.output_len, lay.n_tracks), tf.as_dtype(self.reader.signal.dtype)),
            "row": tf.TensorSpec((None,), tf.int64),
            "jitter": tf.TensorSpec((None,), tf.int32),
            "flip": tf.TensorSpec((None,), tf.bool),
            "weight": tf.TensorSpec((None,), tf.float32),
        }
        if self.reader.bias is not None:
            signature["bias"] = tf.TensorSpec((None, lay.output_len, lay.n_bias), tf.as_dtype(self.reader.bias.dtype))
        return signature


def _followed_by_reverse_complement(batch: dict[str, Any]) -> Any:
    """A raw batch, then the same batch flagged to be reverse-complemented (the reference's doubled batches)."""
    import tensorflow as tf

    flipped = dict(batch, flip=tf.ones_like(batch["flip"]))
    return tf.data.Dataset.from_tensors(batch).concatenate(tf.data.Dataset.from_tensors(flipped))


def _oriented(x: Any, other_strand: Any, flip: Any) -> Any:
    """Rows of ``x``, replaced by the rows of ``other_strand`` where ``flip`` (one row gather, no broadcast select)."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    return tf.gather(tf.concat([x, other_strand], axis=0), tf.range(n) + n * tf.cast(flip, tf.int32))


def _oriented_tracks(x: Any, flip: Any, swap: np.ndarray) -> Any:
    """(B, pos, tracks) as float32; flipped examples get their positions reversed and + and - tracks swapped."""
    import tensorflow as tf

    x = tf.cast(x, tf.float32)
    if np.array_equal(swap, np.arange(len(swap))):  # unstranded
        other_strand = tf.reverse(x, axis=[1])
    elif np.array_equal(swap, np.arange(len(swap))[::-1]):  # e.g. [+, -]: reverse positions and tracks at once
        other_strand = tf.reverse(x, axis=[1, 2])
    else:  # permute tracks by a 0/1 matrix (faster than a gather along the last axis)
        permutation = np.eye(len(swap), dtype=np.float32)[swap].T
        other_strand = tf.einsum("bpt,ts->bps", tf.reverse(x, axis=[1]), tf.constant(permutation))
    return _oriented(x, other_strand, flip)


def model_io_fn(store_layout: schema.StoreLayout, *, orig_multi_loss: bool = False, with_index: bool = False) -> Any:
    """The graph function turning a raw (already jitter-cropped) batch into ``(inputs, targets, weights[, index])``.

    Reverse-complements flipped examples (reverse positions, complement codes, swap + and - tracks, bias too),
    one-hot encodes (N -> zeros) and computes ``counts_bias`` and the ``logcounts`` targets, on whole batches.
    (The jitter crop happens before, in numpy: a gather from a sliding-window view is one memory copy, several
    times cheaper than the equivalent index gather in TF on the CPU, and it shrinks what crosses into tf.data.)
    """
    import tensorflow as tf

    lay = store_layout
    # one-hot rows of codes 0..4 (N -> zeros), then of their complements: looked up at code + 5·flip
    one_hot = schema.one_hot(np.arange(schema.N_CODE + 1))
    one_hot_table = tf.constant(np.concatenate([one_hot, one_hot[schema.COMPLEMENT_CODE]]))
    track_swap = lay.strand_swap(lay.tracks)
    bias_swap = lay.strand_swap(lay.bias_tracks)
    # track -> task membership, to sum a task's tracks into its total count
    membership = np.zeros((lay.n_tracks, len(lay.tasks)), np.float32)
    for i, track in enumerate(lay.tracks):
        membership[i, track.task] = 1.0
    task_matrix = tf.constant(membership)
    tracks_per_task = tf.constant(membership.sum(axis=0))

    def to_model_io(batch: dict[str, Any]) -> tuple[Any, ...]:
        flip = batch["flip"]
        codes = _oriented(batch["seq"], tf.reverse(batch["seq"], axis=[1]), flip)
        codes = tf.cast(codes, tf.int32) + (schema.N_CODE + 1) * tf.cast(flip, tf.int32)[:, None]
        inputs = {"sequence": tf.gather(one_hot_table, codes)}
        profile = _oriented_tracks(batch["signal"], flip, track_swap)
        if "bias" in batch:
            profile_bias = _oriented_tracks(batch["bias"], flip, bias_swap)
            inputs["profile_bias"] = profile_bias
            inputs["counts_bias"] = tf.math.log1p(tf.reduce_sum(profile_bias, axis=1))
        totals = tf.reduce_sum(profile, axis=1)
        logcounts = (tf.math.log1p(totals) if orig_multi_loss
                     else tf.math.log(tf.matmul(totals, task_matrix) + tracks_per_task))
        targets = {"profile": profile, "logcounts": logcounts}
        weights = {"profile": batch["weight"], "logcounts": tf.ones_like(batch["weight"])}
        if with_index:
            return inputs, targets, weights, {"row": batch["row"], "jitter": batch["jitter"], "flip": flip}
        return inputs, targets, weights

    return to_model_io


def make_dataset(store: str | Path | StoreReader, split: Split | None, subset: Subset, *, batch_size: int,
                 with_index: bool = False, **options: Any) -> Any:
    """A tf.data.Dataset of one subset ("train", "val", "test" or "all") of a store for a split fold.

    ``options`` are those of :class:`LocusStream`: all_chroms, jitter (default: train only), reverse_complement
    ("none", "random" per example with p=0.5, "double": every batch followed by its reverse complement),
    backgrounds ("draw" default for train/val, "all", "none" default for test/all), shuffle (default: train
    only), seed, mnll_loss_sample_weight, mnll_background_weight, orig_multi_loss, cache ("auto", True, False).
    """
    return LocusStream(store, split, subset, batch_size=batch_size, **options).dataset(with_index=with_index)
