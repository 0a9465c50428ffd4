"""The Zarr store: schema, open/verify/info, the xarray view and the tf.data loader."""
