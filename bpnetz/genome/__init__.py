"""Genome vocabulary and file formats: base codes and one-hot (:mod:`.sequence`), position weight matrices
(:mod:`.motif`), the one BED / narrowPeak / chrom.sizes parser (:mod:`.intervals`), FASTA (:mod:`.fasta`) and
bigWig (:mod:`.bigwig`) access.

Imports only :mod:`bpnetz.errors` and :mod:`bpnetz.files`; everything above builds on it.
"""
