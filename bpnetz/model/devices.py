"""Which devices train a model: one device, several on one host (``MirroredStrategy``), or several hosts
(``MultiWorkerMirroredStrategy``, from ``TF_CONFIG`` or a Slurm job step).

``--devices all|N`` (:attr:`~bpnetz.model.options.TrainOptions.devices`): the first N logical GPUs, or when the
host has none its logical CPU devices (one unless split with ``tf.config.set_logical_device_configuration``, as
the tests do). One device: TensorFlow's default strategy, exactly the single-device training.

Batch and learning rate: ``--batch-size`` is the *global* batch: each step splits it across the replicas
(every replica gets batch / replicas examples) and the gradients are averaged over the whole global batch, so
the same global batch gives the same step as on one device and the learning rate is used as given (no linear
scaling: scale ``--learning-rate`` yourself when you grow the batch with the devices). Every locus of an epoch
goes to exactly one replica, so every peak is still seen once per epoch.

Many hosts: a ``TF_CONFIG`` naming more than one worker (chief included), or an ``srun`` step of more than one
task (``SLURM_STEP_NUM_TASKS``; :func:`cluster_resolver`), trains with ``MultiWorkerMirroredStrategy``: one
process per host, all started with the same command; each worker trains on all the GPUs it sees, else its CPU
(``--devices`` other than "all" is refused: choose a worker's GPUs with ``CUDA_VISIBLE_DEVICES`` or Slurm's
``--gpus-per-task``). Data: each worker streams its own share of every training epoch
(``LocusStream(shard=(worker, workers))``: the epoch's blocks in an order drawn per (seed, epoch), cut into equal
contiguous runs, disjoint, together every locus once) in per-replica batches (the global batch / all replicas),
handed to the strategy as that worker's input pipeline (``distribute_datasets_from_function``: no rebatching, no
auto-sharding; tf.data's AutoShard is off anyway, since DATA sharding would make every worker read every block).
The workers must run equal steps (every step's all-reduce waits for all of them): a batch size whose shares
differ by a step is refused with the multiple to change it by. Every worker validates on all the validation
loci, so all compute the same validation loss and early stopping and the learning-rate schedule stop or reduce
on every worker at the same epoch without further communication. The counts head is calibrated before training
on the unsharded training stream with the global batch (the same shift on every worker, and the same as one
process's) and refit after training by the chief only. The chief (worker 0) writes the model directory; the
others write theirs into a temporary directory removed at the end, and all wait for the chief before exiting
(:func:`wait_for_workers`). A killed multi-worker run starts again from its first epoch (its workers keep their
training state in temporary directories: resuming would need them to agree on the epoch).

How Keras' ``fit`` was made to run, measured on 127.0.0.1 with two worker processes (Keras 3.15,
TensorFlow 2.21): unchanged, it fails twice. Its symbolic build ``strategy.reduce``-s the first distributed
batch, which ``MultiWorkerMirroredStrategy`` cannot do for the batch's dicts ("Attempt to convert a value
({'sequence': PerReplica...}) to a Tensor"); and each step's outputs (scalar metrics) are reduced with
``strategy.reduce("MEAN", value, axis=0)``, which fails on scalars ("Invalid reduction dimension 0 for input
with 0 dimensions"). :func:`fit_across_workers` patches the one model instance: the symbolic build gets one
replica's share of the first batch, and the steps return their metrics as shape (1,), whose mean over axis 0
across the replicas is the mean the one-host strategies report. The alternative, a custom training loop
for several hosts only, would have duplicated the training step, the callbacks' logic and the model directory's
writing; with the two patches ``fit``, its callbacks, the outputs stay the one copy.
tests/model/test_multiworker.py: both workers exit 0, the chief's model directory is complete and loads, each
epoch's loader rows are disjoint between the workers and together every training locus once, both workers end
with the same weights and losses, and the losses are within 2.3% (training, first epoch; 0.5% the second) and
0.4% (validation) of one process's with the same global batch (other batches: a step joins the two shares'
batches). Tested with one replica per worker (CPU workers), float32, no XLA. Several GPUs per worker take the
same path but are not tested here (no multi-GPU hosts); where a worker's share ends mid-step, its replicas
without a batch rely on TensorFlow's partial batch handling (an empty batch, whose loss Keras'
``divide_no_nan`` makes 0).

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

#: the first port of a Slurm step's workers on each node (TensorFlow's default); a node's k-th task uses +k
SLURM_PORT_BASE = 8888
#: GPUs per node told to TensorFlow's Slurm resolver, which then places none (see :func:`cluster_resolver`)
SLURM_BOOKKEEPING_GPUS = 1024


def check_devices(value: str) -> str:
    """``"all"`` or a positive integer, as text (the option's value)."""
    text = str(value).strip().lower()
    if text == "all" or (text.isdigit() and int(text) >= 1):
        return text
    raise InputError(f"--devices {value!r} is neither 'all' nor a positive number of devices.",
                     fix="Use --devices all, or e.g. --devices 2.")


def cluster_workers(environ: Mapping[str, str] | None = None) -> int:
    """How many workers the environment's cluster has: from ``TF_CONFIG``, else the tasks of the Slurm job step
    this process is one task of (``srun``'s ``SLURM_STEP_NUM_TASKS``; a batch script's own process, which has
    only the job's ``SLURM_NTASKS``, is one worker); 1 when neither names a cluster."""
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG"):
        try:
            cluster = json.loads(environ["TF_CONFIG"]).get("cluster", {})
        except (ValueError, AttributeError) as err:
            raise InputError(f"TF_CONFIG is not a JSON object with a 'cluster' ({err}).", path="TF_CONFIG",
                             fix="Set TF_CONFIG as TensorFlow documents it, or unset it.") from None
        return sum(len(cluster.get(role, [])) for role in ("chief", "worker")) or 1
    tasks = environ.get("SLURM_STEP_NUM_TASKS", "")
    if environ.get("SLURM_PROCID") and tasks.isdigit():
        return max(1, int(tasks))
    return 1


def training_strategy(devices: str = "all") -> Any:
    """The tf.distribute strategy for ``devices`` on this host, or ``MultiWorkerMirroredStrategy`` when the
    environment names a cluster of several workers (see the module docstring). Call it before any other
    TensorFlow operation of the process: a multi-worker strategy configures the collective ops at start."""
    import tensorflow as tf

    devices = check_devices(devices)
    if cluster_workers() > 1:
        if devices != "all":
            raise InputError(f"--devices {devices} chooses devices on one host, but the environment names a cluster "
                             "(TF_CONFIG or an srun step), where each worker trains on all the GPUs it sees.",
                             fix="Drop --devices; choose each worker's GPUs with CUDA_VISIBLE_DEVICES or srun's "
                                 "--gpus-per-task.")
        return multi_worker_strategy()
    pool = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    wanted = len(pool) if devices == "all" else int(devices)
    if wanted > len(pool):
        raise InputError(f"--devices {devices}: this host has {len(pool)} device(s) "
                         f"({', '.join(d.name for d in pool)}).", fix=f"Use --devices {len(pool)} or all.")
    if wanted == 1:
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(devices=[d.name for d in pool[:wanted]])


def multi_worker_strategy() -> Any:
    """``MultiWorkerMirroredStrategy`` over the cluster of ``TF_CONFIG``, else of the Slurm job step."""
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster_resolver())


def cluster_resolver() -> Any:
    """TensorFlow's resolver of the environment's cluster: ``TF_CONFIG``'s, else the Slurm step's (one worker
    per task, task order = ``SLURM_PROCID``, ports from :data:`SLURM_PORT_BASE` up on each node). The Slurm
    resolver is told not to place GPUs (Slurm does: ``--gpus-per-task``): its own placement counts GPUs with
    nvidia-smi, fails on CPU nodes (no nvidia-smi; zero GPUs make a zero range step) and rejects a task that
    sees only its own GPU; the GPU count it is given is then bookkeeping only."""
    import tensorflow as tf

    resolvers = tf.distribute.cluster_resolver
    if os.environ.get("TF_CONFIG"):
        return resolvers.TFConfigClusterResolver()
    try:
        return resolvers.SlurmClusterResolver(port_base=SLURM_PORT_BASE, gpus_per_node=SLURM_BOOKKEEPING_GPUS,
                                              gpus_per_task=1, auto_set_gpu=False)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"the Slurm step's environment does not describe its tasks ({err}).",
                         path="SLURM_STEP_NODELIST",
                         fix="Launch one task per worker with srun (it sets SLURM_PROCID, SLURM_STEP_NUM_TASKS, "
                             "SLURM_STEP_NODELIST and SLURM_STEP_TASKS_PER_NODE).") from None


def worker_shard(strategy: Any) -> tuple[int, int] | None:
    """``(this worker's index, workers)`` under a multi-worker strategy (the index is TensorFlow's input
    pipeline id: the chief, when named, is worker 0); None on one host."""
    extended = strategy.extended
    workers = int(getattr(extended, "_num_workers", 1))
    return (int(extended._id_in_cluster), workers) if workers > 1 else None


def is_chief(strategy: Any) -> bool:
    """Whether this process writes the training's outputs (always, but for a non-chief worker of a cluster)."""
    return bool(getattr(strategy.extended, "_is_chief", True))


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


def wait_for_workers(strategy: Any) -> None:
    """Return once every worker of a multi-worker strategy has called this (an all-reduce of one number); at
    once on one host. Workers that exit while the chief still writes its model make its coordination service
    report them as crashed."""
    import tensorflow as tf

    @tf.function  # eagerly, TensorFlow warns of the strategy's overhead
    def barrier() -> Any:
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

    if worker_shard(strategy) is not None:
        barrier()


def fit_across_workers(model: Any, strategy: Any) -> None:
    """Let Keras 3.15's ``fit`` run ``model`` under a multi-worker strategy (nothing changes on one host): its
    symbolic build gets one replica's share of the first batch instead of ``strategy.reduce`` over the batch's
    dicts, and each step's outputs (scalars) travel as shape (1,), which the cross-worker mean reduces over
    axis 0 (see the module docstring for both failures). ``_maybe_symbolic_build`` is Keras-internal: should a
    Keras upgrade rename it, the first failure returns (tests/model/test_multiworker.py catches it)."""
    import tensorflow as tf

    if worker_shard(strategy) is None:
        return
    symbolic_build = model._maybe_symbolic_build

    def one_replica(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def build(iterator: Any = None, data_batch: Any = None) -> None:
        for _, _, batches in iterator or ():
            data_batch = tf.nest.map_structure(one_replica, next(batches))
            break
        symbolic_build(data_batch=data_batch)

    def vectors(step: Any) -> Any:
        return lambda data: {name: tf.reshape(value, (1,)) for name, value in step(data).items()}

    model._maybe_symbolic_build = build
    model.train_step, model.test_step = vectors(model.train_step), vectors(model.test_step)


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
