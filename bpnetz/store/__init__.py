"""The Zarr store: schema, open/verify/info, the xarray view, block reads (reader), locus selection and the
epoch stream (framework-free; its tf.data adapter is :mod:`bpnetz.model.data`)."""

from bpnetz.store.dataset import open_dataset

__all__ = ["open_dataset"]
