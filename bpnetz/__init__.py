"""bpnetz: base-resolution BPNet models trained from precompiled Zarr stores."""

__version__ = "0.1.0"
