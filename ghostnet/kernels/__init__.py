"""The lowest layer: Numba kernels, vector maths and BLAS products (no model knowledge)."""
