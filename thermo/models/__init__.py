"""One module per case type (stack, coldplate, compact, calibrate, rack,
facility) and the cold-plate geometry and pin-fin friction they share. The
registry (:mod:`aidc_thermo.registry`) maps a case file's ``type`` to its module."""


def precision_dtype(precision: str):
    """The JAX dtype of a case's ``precision`` ("float64" or "float32").

    JAX computes in float32 unless its x64 mode is on, and then turns float64
    arrays into float32 without a word; a float64 case would run in float32.
    The CLI turns x64 on; a Python caller who asks for float64 without it gets
    this error instead of a float32 answer labelled float64."""
    import jax
    import jax.numpy as jnp

    if precision == "float64":
        if not jax.config.jax_enable_x64:
            raise RuntimeError(
                "float64 requested but JAX x64 is disabled; enable it at the entry point "
                '(jax.config.update("jax_enable_x64", True)) or ask for precision = "float32"'
            )
        return jnp.float64
    return jnp.float32
