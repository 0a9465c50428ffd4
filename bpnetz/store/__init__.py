"""The Zarr store: schema, open/verify/info, the xarray view and the tf.data loader."""

from bpnetz.store.dataset import open_dataset

__all__ = ["open_dataset"]
