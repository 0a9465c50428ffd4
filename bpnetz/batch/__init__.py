"""``bpnetz batch``: many experiments (an atlas) through build → train → predict → shap → modisco → hits on
dask.distributed, cached by content, resumable after a kill, with a status table and an atlas report.

- :mod:`bpnetz.batch.manifest`: the TSV/YAML manifest of experiments and the stages wanted;
- :mod:`bpnetz.batch.records`: stage keys (checksums of inputs, parameters, upstream keys, bpnetz version),
  output manifests and the atomically written stage records;
- :mod:`bpnetz.batch.stages`: one stage on a worker: the key, the cache check, the CLI in a fresh subprocess;
- :mod:`bpnetz.batch.runner`: the cluster (LocalCluster or ``--scheduler``), the task graph, progress, summary;
- :mod:`bpnetz.batch.status` and :mod:`bpnetz.batch.report`: the status table and the atlas report.

Every stage runs the existing command (``python -m bpnetz train …``) in a subprocess, so TensorFlow state and
GPU memory never outlive one stage, and this package imports no internals of the stages it drives.
"""
