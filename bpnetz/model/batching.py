"""How many examples one call of a model takes when it runs without a GPU: batches are cut into calls whose
largest layer output fits the processor's caches.

A BPNet's dilated convolutions stream each layer's whole activation (examples × positions × filters) through
memory; once that outgrows the caches the processor waits on memory. Measured on this project's 2-core VM (AMD
EPYC, 1 MiB L2 per core, 32 MiB L3; TensorFlow 2.21, 2 threads, host memory pooled as
:func:`bpnetz.memory.pool_tensor_memory` sets it up), forward passes in examples/s by examples per call:

=================================  ===================================  ===================================
model (filters, input -> output)   best examples per call (one layer)   larger calls
=================================  ===================================  ===================================
64, 2114 -> 1000 (the default)     8: 222–224/s (4 MiB); 4–16: 206+     64: 186–195/s, 128: 182–193/s
32, 1614 -> 500                    16: 782–797/s (3.2 MiB); 8–32: 729+  64: 649–662/s, 128: 605–634/s
128, 2114 -> 1000                  4: 76–77/s (4 MiB); 2–8: 72+         16–64: 66–69/s
=================================  ===================================  ===================================

so a call holds about :data:`CPU_CALL_BYTES` of one layer's output: 1.13–1.26 times the examples/s of
64 per call. bpnet-lite's BPNet under torch shows the same curve (113/s at 8 per call, 60/s at 64). On a GPU
the whole batch is one call (its memory bandwidth is the reason to batch there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: bytes of the largest layer output of one model call on a CPU (4 MiB: 8 examples of the default BPNet)
CPU_CALL_BYTES = 4 * 2**20


def largest_output_bytes(model: Any) -> int:
    """Bytes per example of the model's largest layer output, counted as float32 (prediction's dtype; a mixed
    precision model's float16 layers are overcounted, its calls kept smaller), from the layers' symbolic
    outputs; 0 when the model does not expose them."""
    import keras

    largest = 0
    for layer in model.layers:
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer never called symbolically
            continue
        for output in outputs:
            dims = tuple(output.shape)[1:]
            if dims and all(d is not None for d in dims):
                largest = max(largest, int(np.prod(dims)) * 4)
    return largest


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def examples_per_call(model: Any, budget: int = CPU_CALL_BYTES) -> int | None:
    """Examples per model call: as many as keep the largest layer output near ``budget`` bytes without a GPU
    (at least 1); None (the whole batch) on a GPU or when the model's layer sizes are unknown."""
    if has_gpu():
        return None
    per_example = largest_output_bytes(model)
    if per_example <= 0:
        return None
    return max(1, round(budget / per_example))
