"""Batched prediction, reverse-complement averaging, metrics and bigWig writers."""
