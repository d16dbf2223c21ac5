"""Strict JAX for the whole test session: float64 available, dtype promotion
strict, rank promotion raises. Tests that check float32 pass float32 arrays
explicitly."""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
