"""Data: our synthetic RGB-D scenes, the Hypersim training reader, and benchmark readers."""
