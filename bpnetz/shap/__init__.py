"""DeepLIFT-SHAP contribution scores, dinucleotide shuffles, score files, tfmodisco-lite and FiNeMo bridges."""
