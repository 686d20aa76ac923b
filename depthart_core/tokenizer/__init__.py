"""Stage 1: the frozen multi-scale residual VQ-VAE that turns RGB and depth into token maps."""
