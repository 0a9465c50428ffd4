"""The tf.data adapter of a store stream: :class:`~bpnetz.store.stream.LocusStream` elements in, batches of the
model I/O contract (:mod:`bpnetz.model.contract`) out.

Elements of several batches (one-hot uint8 sequence, stored signal and bias) come from the stream's generator and
are split into batches; a parallel graph map turns each batch into float targets, ``counts_bias`` and the
``logcounts`` targets (a consumer on the CPU that takes one batch at a time, prediction, converts them in its own
thread instead: :func:`iterate_here`). Splitting before the map copies the stored uint8 tracks, not their float32
casts (a quarter of the bytes): 17,800–18,400 loci per CPU-second against 12,200–12,500 with the map on whole elements
(RAM-cached 40,636-locus store, 2114/1000, 4 tracks, two interleaved runs each, 2 cores at load 17). One map call
per core from the start: AUTOTUNE ramps up too slowly for short epochs (measured 20% slower).

Memory: the pipeline's buffers are a few elements and batches (a batch of 64 loci at 2114/1000 is ~1 MB; the
loader alone iterating two cached epochs of the demo store peaked at 0.78 GB, the store's cache included). An
explicit ``autotune.ram_budget`` of 1 GiB was tried and dropped: no memory to win, and loci per CPU-second 3–12%
lower in two before/after runs of scripts/bench_loader.py (2-core machine, shared; within its noise, but not
worth the risk).

tf.data hands its consumer (Keras ``fit``, a prediction loop) an ``UnknownError`` carrying a traceback when the
generator raises; :func:`raise_stream_failures` turns it back into the stream's own :class:`InputError`, by
type (the error the stream kept in ``failure``), so the command line reports it as one paragraph.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.config import Split
from bpnetz.memory import keep_freed_memory
from bpnetz.model.contract import TrackGroups
from bpnetz.store import schema
from bpnetz.store.reader import StoreReader
from bpnetz.store.selection import Subset
from bpnetz.store.stream import LocusStream


def stream_dataset(stream: LocusStream, *, with_index: bool = False, continuous: bool = False) -> Any:
    """The tf.data pipeline: elements of several batches -> batches -> model inputs/targets (parallel map).

    Yields ``(inputs, targets, sample_weights)`` per the model I/O contract, plus a fourth dict
    ``{"row", "jitter", "flip"}`` (store row, drawn jitter, reverse-complemented or not) with ``with_index``.
    Iterating the dataset again starts the stream's next epoch; ``continuous``: one iteration yields every epoch
    from the stream's :attr:`~bpnetz.store.stream.LocusStream.epoch` on, ``stream.n_batches`` batches each,
    without end (:meth:`~bpnetz.store.stream.LocusStream.epochs`: no pipeline restart between epochs).
    """
    import tensorflow as tf

    keep_freed_memory()
    generator = stream.epochs if continuous else stream.next_epoch
    ds = tf.data.Dataset.from_generator(generator, output_signature=element_signature(stream)).unbatch()
    ds = ds.map(model_io_fn(stream.layout, orig_multi_loss=stream.orig_multi_loss, with_index=with_index),
                num_parallel_calls=max(2, os.cpu_count() or 1), deterministic=True)
    if not continuous:
        ds = ds.apply(tf.data.experimental.assert_cardinality(stream.n_batches))
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    options.threading.max_intra_op_parallelism = 1  # parallelism comes from the parallel map over elements
    # never auto-sharded: workers stream disjoint shares of the blocks themselves (LocusStream(shard=...))
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)


def element_signature(stream: LocusStream) -> dict[str, Any]:
    """The TensorSpecs of the stream's elements (see :meth:`~bpnetz.store.stream.LocusStream.elements`)."""
    import tensorflow as tf

    lay, reader = stream.layout, stream.reader
    signature = {
        "sequence": tf.TensorSpec((None, None, lay.input_len, 4), tf.uint8),
        "signal": tf.TensorSpec((None, None, lay.output_len, lay.n_tracks), tf.as_dtype(reader.signal.dtype)),
        "row": tf.TensorSpec((None, None), tf.int64),
        "jitter": tf.TensorSpec((None, None), tf.int32),
        "flip": tf.TensorSpec((None, None), tf.bool),
        "weight": tf.TensorSpec((None, None), tf.float32),
        "counts_weight": tf.TensorSpec((None, None), tf.float32),
    }
    if reader.bias is not None:
        signature["bias"] = tf.TensorSpec((None, None, lay.output_len, lay.n_bias), tf.as_dtype(reader.bias.dtype))
    return signature


@contextlib.contextmanager
def raise_stream_failures(*streams: LocusStream) -> Iterator[None]:
    """Around a loop over streams' datasets: a TensorFlow error caused by a stream's InputError raises that
    InputError (the first stream's that failed); any other error passes unchanged."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError:
        failure = next((s.failure for s in streams if s.failure is not None), None)
        if failure is None:
            raise
        raise failure from None


def iterate(stream: LocusStream, *, with_index: bool = False) -> Iterator[tuple[Any, ...]]:
    """One epoch of the stream's batches as numpy-convertible tensors, its InputErrors raised as such."""
    with raise_stream_failures(stream):
        yield from stream_dataset(stream, with_index=with_index)


def iterate_here(stream: LocusStream, *, with_index: bool = False) -> Iterator[tuple[Any, ...]]:
    """One epoch of the stream's batches as :func:`iterate` yields them, converted in the calling thread
    without tf.data, for a consumer that takes each batch in turn on a CPU (prediction, collecting SHAP inputs).

    Why: a one-epoch tf.data pipeline costs its start (0.05–0.2 s) and, after the last batch, its teardown,
    which took 2.4 s at the end of the first epoch of a process predicting 256 loci beside the model (2-core
    VM); its map threads also compete with the model's. Converting here costs ~30 µs per locus (crops, one-hot
    and the graph function :func:`model_io_fn` run eagerly on the element's batch axes), against ~5 ms per
    locus for the default BPNet's reverse-complement-averaged forward pass on the CPU; a GPU consumer should
    keep tf.data's overlap (:func:`iterate`). InputErrors of the stream are raised as such.
    """
    keep_freed_memory()
    to_model_io = model_io_fn(stream.layout, orig_multi_loss=stream.orig_multi_loss, with_index=with_index)
    for element in stream.next_epoch():
        converted = [{name: np.asarray(value) for name, value in part.items()} for part in to_model_io(element)]
        for k in range(len(element["row"])):
            yield tuple({name: value[k] for name, value in part.items()} for part in converted)


def model_io_fn(store_layout: schema.StoreLayout, *, orig_multi_loss: bool = False, with_index: bool = False) -> Any:
    """The graph function turning an element (cropped, oriented, one-hot) into ``(inputs, targets, weights[,
    index])``: float32 tracks, ``counts_bias`` and the ``logcounts`` targets, for any leading batch axes."""
    import tensorflow as tf

    # track -> task membership, to sum a task's tracks into its total count
    groups = TrackGroups.of(store_layout)
    membership = np.zeros((groups.n_tracks, len(groups.tasks)), np.float32)
    for t, tracks in enumerate(groups.tasks):
        membership[list(tracks), t] = 1.0
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
        weights = {"profile": element["weight"], "logcounts": element["counts_weight"]}
        if with_index:
            return inputs, targets, weights, {"row": element["row"], "jitter": element["jitter"],
                                              "flip": element["flip"]}
        return inputs, targets, weights

    return to_model_io


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
    return stream_dataset(LocusStream(store, split, subset, batch_size=batch_size, **options),
                          with_index=with_index)
