"""Readers of raw inputs, locus resolution, the Dask build of a store, preprocessing and simulation."""
