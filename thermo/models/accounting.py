"""Hall-level accounting of the ``facility`` case type: what the hours of a
coupled hall (:mod:`aidc_thermo.kernels.plant.coupled`) cost per token.

Boundaries: IT = accelerators + other IT loads + in-rack power conversion
losses; cooling = TCS and FW pumps, device fans, chiller compressor, condenser
heat-rejection power, and air-side cooling of the heat that is not captured by
liquid; facility = IT + cooling + facility overhead (a fraction of IT power:
UPS and distribution losses, lighting). Period metrics are ratios of totals,
not means of ratios.

Pure JAX on :class:`~aidc_thermo.kernels.plant.coupled.OperatingPoint` arrays,
so that it runs inside the facility's ``solve``/``report`` under ``jit`` and
``vmap``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from aidc_thermo.kernels.plant.coupled import OperatingPoint

__all__ = ["AnnualTotals", "EnergyMetrics", "annual_totals", "energy_metrics"]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class EnergyMetrics:
    """Energy per token and efficiency indices (boundaries in the module docstring).

    ``j_per_token_it``, ``j_per_token_cooling`` (equal to cooling W per token/s),
    ``j_per_token_facility``: J/token; ``tokens_per_kwh``: tokens per kWh of
    facility energy (the TokEnergy-style index, facility boundary);
    ``tokens_per_kwh_it``: per kWh of IT energy; ``ppue_cooling``: partial PUE of
    cooling, (IT + cooling)/IT; ``pue``: facility/IT; ``water_l_per_kwh``: make-up
    water per kWh of IT energy (WUE, L/kWh, taking 1 kg of water as 1 L).
    """

    j_per_token_it: jax.Array
    j_per_token_cooling: jax.Array
    j_per_token_facility: jax.Array
    tokens_per_kwh: jax.Array
    tokens_per_kwh_it: jax.Array
    ppue_cooling: jax.Array
    pue: jax.Array
    water_l_per_kwh: jax.Array


def _metrics(e_it, e_cool, e_fac, tokens, water_kg):
    """Metrics from energies (J), token counts and water (kg) over one period."""
    return EnergyMetrics(
        j_per_token_it=e_it / tokens,
        j_per_token_cooling=e_cool / tokens,
        j_per_token_facility=e_fac / tokens,
        tokens_per_kwh=tokens * 3.6e6 / e_fac,
        tokens_per_kwh_it=tokens * 3.6e6 / e_it,
        ppue_cooling=(e_it + e_cool) / e_it,
        pue=e_fac / e_it,
        water_l_per_kwh=water_kg * 3.6e6 / e_it,
    )


def energy_metrics(op: OperatingPoint) -> EnergyMetrics:
    """Instantaneous energy metrics of an operating point."""
    return _metrics(op.p_it, op.p_cooling, op.p_facility, op.tokens_per_s, op.water_makeup)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class AnnualTotals:
    """Totals over a series of operating points (e.g. 8760 hours).

    Energies in kWh, ``tokens`` in tokens, ``water_l`` in litres,
    ``free_cooling_hours`` in hours, ``metrics`` the period's
    :class:`EnergyMetrics` (ratios of totals, not means of ratios).
    """

    energy_it_kwh: jax.Array
    energy_cooling_kwh: jax.Array
    energy_facility_kwh: jax.Array
    tokens: jax.Array
    water_l: jax.Array
    free_cooling_hours: jax.Array
    metrics: EnergyMetrics


def annual_totals(ops: OperatingPoint, hours) -> AnnualTotals:
    """Aggregate operating points batched along axis 0, each lasting ``hours``
    (scalar or shape ``(n,)``) hours."""
    dtype = ops.p_it.dtype
    hours = jnp.broadcast_to(jnp.asarray(hours, dtype), ops.p_it.shape)
    seconds = 3600.0 * hours
    e_it = jnp.sum(ops.p_it * seconds)
    e_cool = jnp.sum(ops.p_cooling * seconds)
    e_fac = jnp.sum(ops.p_facility * seconds)
    tokens = jnp.sum(ops.tokens_per_s * seconds)
    water = jnp.sum(ops.water_makeup * seconds)
    return AnnualTotals(
        energy_it_kwh=e_it / 3.6e6,
        energy_cooling_kwh=e_cool / 3.6e6,
        energy_facility_kwh=e_fac / 3.6e6,
        tokens=tokens,
        water_l=water,
        free_cooling_hours=jnp.sum(ops.free_cooling * hours),
        metrics=_metrics(e_it, e_cool, e_fac, tokens, water),
    )
