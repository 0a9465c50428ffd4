"""In-silico experiments with a trained model: variant effects, saturation mutagenesis, motif syntax."""
