"""Files as bpnetz writes and opens them: atomic outputs (files and whole output directories, with bpnetz's
marker), one writer at a time (lock files), names from input files checked before they become paths, HDF5 opening.

The lowest layer of the package: it knows nothing of genomes, stores or models.
"""
