"""BPNet in Keras 3: architecture from bpnet_params.json, losses, counts-loss weight, training."""
