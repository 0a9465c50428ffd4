"""Which devices train a model: one device, or several on one host (``MirroredStrategy``); several hosts are
detected (``TF_CONFIG``, Slurm) and refused, for the reasons measured below.

``--devices all|N`` (:attr:`~bpnetz.model.options.TrainOptions.devices`): the first N logical GPUs, or when the
host has none its logical CPU devices (one unless split with ``tf.config.set_logical_device_configuration``, as
the tests do). One device: TensorFlow's default strategy, exactly the single-device training.

Batch and learning rate: ``--batch-size`` is the *global* batch: each step splits it across the replicas
(every replica gets batch / replicas examples) and the gradients are averaged over the whole global batch, so
the same global batch gives the same step as on one device and the learning rate is used as given (no linear
scaling: scale ``--learning-rate`` yourself when you grow the batch with the devices). Every locus of an epoch
goes to exactly one replica, so every peak is still seen once per epoch.

Many hosts: not yet. A ``TF_CONFIG`` naming more than one worker, or a Slurm step with more than one task
(``SLURM_NTASKS``), is refused with an InputError. What is ready and tested: the loader's per-worker shares
(``LocusStream(shard=(worker, workers))``: the epoch's blocks in an order drawn per (seed, epoch), cut into equal
contiguous runs, disjoint, together every locus once; tests/model/test_devices.py checks it from two processes'
row indices) and tf.data's AutoShard off (DATA sharding would make every worker read every block). What blocks
it, measured on 127.0.0.1 with two worker processes: TensorFlow's collectives run (an all-reduce over gRPC
returned the right sum), and with AutoShard off each worker's replicas consume all of that worker's batches
(split one piece per replica), but Keras 3.15's ``fit`` under ``MultiWorkerMirroredStrategy`` fails on this
model's dict inputs: its symbolic build ``strategy.reduce``-s the first distributed batch ("Attempt to convert a
value ({'sequence': PerReplica...}) to a Tensor"), and once that is bypassed the reduction of the step's outputs
fails ("Invalid reduction dimension 0 for input with 0 dimensions").

Gradient clipping: Keras 3 clips each replica's share of the gradient by its own global norm before the
replicas' gradients are summed, so with clipping active (the first steps of every BPNet, ``GRADIENT_CLIPNORM``)
two devices took other steps than one: the tiny test model's weights differed by 170% (max relative) after 3
steps with clipping, 1e-5 without. :func:`clip_across_replicas` makes the optimizer clip the *summed* gradient
(an extra all-reduce of the gradients per step): the same step as one device, to float rounding.

NaN losses: TensorFlow ≥ 2.16 with Keras 3 has open reports of MirroredStrategy losses turning NaN after some
steps where one device trains normally (tensorflow#90686, CREsted#100, tensorflow#87432).
:class:`NonFiniteLossGuard` detects a non-finite training loss under a multi-device strategy and stops with an
InputError that says to rerun with ``--devices 1`` (the last completed epoch is kept for resuming).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from bpnetz.errors import InputError


def check_devices(value: str) -> str:
    """``"all"`` or a positive integer, as text (the option's value)."""
    text = str(value).strip().lower()
    if text == "all" or (text.isdigit() and int(text) >= 1):
        return text
    raise InputError(f"--devices {value!r} is neither 'all' nor a positive number of devices.",
                     fix="Use --devices all, or e.g. --devices 2.")


def cluster_workers(environ: Mapping[str, str] | None = None) -> int:
    """How many workers the environment's cluster has: from ``TF_CONFIG``, else Slurm's ``SLURM_NTASKS``; 1
    when neither names a cluster."""
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG"):
        try:
            cluster = json.loads(environ["TF_CONFIG"]).get("cluster", {})
        except (ValueError, AttributeError) as err:
            raise InputError(f"TF_CONFIG is not a JSON object with a 'cluster' ({err}).", path="TF_CONFIG",
                             fix="Set TF_CONFIG as TensorFlow documents it, or unset it.") from None
        return sum(len(cluster.get(role, [])) for role in ("chief", "worker")) or 1
    if environ.get("SLURM_JOB_ID") and environ.get("SLURM_NTASKS", "1").isdigit():
        return int(environ.get("SLURM_NTASKS", "1"))
    return 1


def training_strategy(devices: str = "all") -> Any:
    """The tf.distribute strategy for ``devices`` on this host (see the module docstring)."""
    import tensorflow as tf

    devices = check_devices(devices)
    workers = cluster_workers()
    if workers > 1:
        source = "TF_CONFIG" if os.environ.get("TF_CONFIG") else "SLURM_NTASKS"
        raise InputError(f"{source} names {workers} workers, but training on several hosts does not run yet (Keras "
                         "3.15's fit under MultiWorkerMirroredStrategy fails on the model's dict inputs; see "
                         "bpnetz/model/devices.py).", path=source,
                         fix="Train on one host: run one process (all its GPUs: --devices all), with TF_CONFIG unset "
                             "or a Slurm step of one task.")
    pool = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    wanted = len(pool) if devices == "all" else int(devices)
    if wanted > len(pool):
        raise InputError(f"--devices {devices}: this host has {len(pool)} device(s) "
                         f"({', '.join(d.name for d in pool)}).", fix=f"Use --devices {len(pool)} or all.")
    if wanted == 1:
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(devices=[d.name for d in pool[:wanted]])


def clip_across_replicas(optimizer: Any) -> None:
    """Make ``optimizer``'s ``global_clipnorm`` apply to the gradient summed over the replicas (see the module
    docstring); nothing changes outside a multi-replica step or without ``global_clipnorm``."""
    import tensorflow as tf

    per_replica_clip = optimizer._clip_gradients

    def clip(grads: list[Any]) -> list[Any]:
        context = tf.distribute.get_replica_context()
        limit = optimizer.global_clipnorm
        if not limit or context is None or context.num_replicas_in_sync == 1:
            return per_replica_clip(grads)
        present = [g for g in grads if g is not None]
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, present)
        factor = tf.minimum(1.0, limit / tf.maximum(tf.linalg.global_norm(summed), 1e-12))
        return [None if g is None else g * tf.cast(factor, g.dtype) for g in grads]

    optimizer._clip_gradients = clip


def nonfinite_loss_guard(strategy: Any) -> Any:
    """A Keras callback stopping a multi-device training at its first non-finite loss with an InputError."""
    import keras

    class NonFiniteLossGuard(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise InputError(
                    f"the training loss became {float(loss)} at batch {batch} with {strategy.num_replicas_in_sync} "
                    "replicas (a known TensorFlow >= 2.16 + Keras 3 defect of distributed training, "
                    "tensorflow#90686).",
                    fix="Rerun the same command with --devices 1: it resumes from the last completed epoch.")

    return NonFiniteLossGuard()
