"""Files as bpnetz writes and opens them: atomic outputs (files and whole directories), HDF5 opening.

The lowest layer of the package: it knows nothing of genomes, stores or models.
"""
