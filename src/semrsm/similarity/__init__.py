"""Similarity engine: kernels, matchers, RSMs, CKA (torch/numpy only)."""
