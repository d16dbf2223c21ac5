"""Accelerator power, leakage and thermal throttling as functions of the junction
temperature.

Model (per accelerator, SI units, temperatures in kelvin)::

    clock(T_j)   = 1 - (1 - clock_min) * ramp((T_j - t_throttle) / throttle_span)
    P(T_j)       = p_idle + u * p_dynamic * clock^dyn_clock_exponent + leakage(T_j)
    leakage(T_j) = leak_ref * exp(leak_beta * (T_j - t_leak_ref))
    tokens/s     = u * clock * tokens_per_s

``u`` is the utilization (fraction of the accelerator's nominal throughput that
the workload asks for), ``tokens_per_s`` the throughput at u = 1 and nominal
clock. The clock derates linearly from 1 at ``t_throttle`` to ``clock_min`` at
``t_throttle + throttle_span`` (firmware lowering clocks as the junction heats);
``ramp`` is that linear ramp with its two corners rounded by quadratics over
``ramp_smoothing * throttle_span`` kelvin either side, so the clock is C^1 in T_j
(Newton and gradients see no kink) and is exactly 1 below
``t_throttle - ramp_smoothing * throttle_span``. Dynamic power scales with
clock^dyn_clock_exponent: 1 for frequency scaling at fixed voltage, up to about 3
when the voltage follows the frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..solvers.roots import _asfloat, _float_dtype

__all__ = [
    "Accelerator",
    "accelerator_power",
    "clock_fraction",
    "dynamic_power",
    "leakage_power",
    "smooth_ramp",
    "throughput",
]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Accelerator:
    """Power and throughput parameters of one accelerator (all traced scalars).

    Attributes:
        p_idle: power at zero utilization excluding leakage, W.
        p_dynamic: dynamic power at full utilization and nominal clock, W.
        leak_ref: leakage power at ``t_leak_ref``, W.
        leak_beta: exponential leakage coefficient, 1/K (about 0.01-0.03 for
            modern CMOS; leakage doubles every ln2/beta kelvin).
        t_leak_ref: reference junction temperature for ``leak_ref``, K.
        t_throttle: junction temperature where the clock starts to derate, K.
        throttle_span: junction-temperature rise from full clock to ``clock_min``, K.
        clock_min: lowest clock fraction under throttling, in (0, 1].
        dyn_clock_exponent: exponent of dynamic power in the clock fraction.
        tokens_per_s: throughput at full utilization and nominal clock, tokens/s.
        ramp_smoothing: half-width of the rounded corners as a fraction of
            ``throttle_span`` (in (0, 0.5)).
    """

    p_idle: jax.Array
    p_dynamic: jax.Array
    leak_ref: jax.Array
    leak_beta: jax.Array
    t_leak_ref: jax.Array
    t_throttle: jax.Array
    throttle_span: jax.Array
    clock_min: jax.Array
    dyn_clock_exponent: jax.Array
    tokens_per_s: jax.Array
    ramp_smoothing: jax.Array


def smooth_ramp(x, h):
    """C^1 ramp: 0 for x <= -h, x between h and 1 - h, 1 for x >= 1 + h, with
    quadratic corners of half-width ``h`` (0 < h < 0.5) at 0 and 1."""
    lower = jnp.where(x <= -h, 0.0, jnp.where(x < h, (x + h) ** 2 / (4.0 * h), x))
    upper = jnp.where(x >= 1.0 + h, 1.0, 1.0 - (1.0 + h - x) ** 2 / (4.0 * h))
    return jnp.where(x <= 1.0 - h, lower, upper)


def clock_fraction(acc: Accelerator, t_j):
    """Clock as a fraction of nominal at junction temperature ``t_j`` (K)."""
    dtype = _float_dtype(t_j, acc.t_throttle)
    (t_j,) = _asfloat(dtype, t_j)
    x = (t_j - acc.t_throttle) / acc.throttle_span
    return 1.0 - (1.0 - acc.clock_min) * smooth_ramp(x, acc.ramp_smoothing)


def leakage_power(acc: Accelerator, t_j):
    """Leakage power, W, at junction temperature ``t_j`` (K)."""
    return acc.leak_ref * jnp.exp(acc.leak_beta * (t_j - acc.t_leak_ref))


def dynamic_power(acc: Accelerator, clock):
    """Dynamic power, W, at full utilization and ``clock`` (fraction of nominal)."""
    return acc.p_dynamic * jnp.power(clock, acc.dyn_clock_exponent)


def accelerator_power(acc: Accelerator, utilization, t_j):
    """Electrical power of one accelerator, W (all of it becomes heat)."""
    return acc.p_idle + utilization * dynamic_power(acc, clock_fraction(acc, t_j)) + leakage_power(acc, t_j)


def throughput(acc: Accelerator, utilization, t_j):
    """Tokens per second of one accelerator at junction temperature ``t_j`` (K)."""
    return utilization * clock_fraction(acc, t_j) * acc.tokens_per_s
