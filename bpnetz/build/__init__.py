"""The build of a store from raw inputs: input cross-checks, locus resolution, the Dask block build, options."""
