"""Coolant and junction temperatures of a rack in time, for a workload power
trace, on the rack's own network (:mod:`aidc_thermo.models.rack`).

The steady rack solve gives the flows (held over the trace: the CDU delivers a
constant flow and the coolant's properties barely change). On that topology
:mod:`aidc_thermo.kernels.network.transient` carries the coolant through
every pipe, hose, quick disconnect and cold plate (``n_cells`` cells each),
mixes it at the manifold taps and junctions, and heats it through one lumped
wall per cold plate (heat capacity ``plate_capacity``: the plate's metal and
the package above it). The wall gives its heat to each of the plate's
``n`` coolant cells through ``G/n (T_wall - T_k)``, so at steady state
``T_wall - T_k`` falls by the factor ``a = C / (C + G/n)`` from cell to cell
(``C = m_dot c_p``) and ``T_wall - T_in = P / (C (1 - a^n))``. ``G`` is set
so that this equals the steady rack's ``R(Q) P``:

    ``a = (1 - 1 / (R C))^(1/n)``, ``G = n C (1/a - 1)``

(the discrete form of ``effectiveness = 1 - exp(-NTU)``), so the wall
temperature is the junction temperature in time, equal to the steady rack's
``T_in + R(Q) P`` at steady state and lagging its power with time constant
about ``plate_capacity / G``. A plate with ``R(Q) <= 1/(m_dot c_p)`` (a
junction rise below the coolant's own rise through the plate) has no such
wall and is refused.

Volumes: pipes and hoses ``pi D^2 / 4 L`` from the rack's geometry; quick
disconnects ``qd_volume`` and cold plates ``plate_volume`` each (the rack
case does not give them: defaults 5 mL and 20 mL, typical of 1U liquid
cooled trays); manifold taps and junctions are mixing points with no volume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels.network import transient as ktr
from aidc_thermo.models import rack

__all__ = ["RackTransport", "prepare", "plate_power_from_trace", "run"]


@dataclass(frozen=True)
class RackTransport:
    """What :func:`run` needs: the static network and config, and the traced
    inputs except the plate powers (``inputs.heat`` is a placeholder)."""

    network: object
    config: ktr.TransportConfig
    inputs: ktr.TransportInputs
    plate_edges: tuple[int, ...]
    plate_rated_power: np.ndarray  # W, per plate (the case's powers)
    steady_junction: np.ndarray  # K, per plate, from the steady rack solve


def prepare(
    static: rack.Static,
    params: rack.Params,
    solution: rack.Solution,
    *,
    n_cells: int = 4,
    scheme: str = "euler",
    plate_capacity: float = 400.0,
    plate_volume: float = 2.0e-5,
    qd_volume: float = 5.0e-6,
) -> RackTransport:
    """Set up the transient transport of a solved rack (numpy, outside ``jit``).

    Args:
        static, params, solution: :func:`aidc_thermo.models.rack.build` and
            :func:`~aidc_thermo.models.rack.solve` of the case.
        n_cells: coolant cells per edge; scheme: ``"euler"``, ``"bdf2"``, ``"cn"``.
        plate_capacity: heat capacity of every plate's wall, J/K (> 0).
        plate_volume, qd_volume: coolant volume of a cold plate and of a quick
            disconnect, m^3 (>= 0).

    Raises:
        ValueError: a non-positive capacity or negative volume, or a plate
            whose thermal resistance is not above ``1/(m_dot c_p)`` (named).
    """
    if not plate_capacity > 0:
        raise ValueError(f"plate_capacity must be > 0 J/K, got {plate_capacity}")
    for name, v in (("plate_volume", plate_volume), ("qd_volume", qd_volume)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0 m^3, got {v}")
    net = static.network
    dt = rack._dtype_of(static.precision)
    ep, _ = rack.edge_params(static, params)
    role = np.asarray(static.edge_role)
    length, diameter = np.asarray(ep.length, float), np.asarray(ep.diameter, float)
    vol = np.where(np.isin(role, [rack.R_QD, rack.R_PLATE]), 0.0, np.pi / 4 * diameter**2 * length)
    vol = np.where(role == rack.R_QD, qd_volume, vol)
    vol = np.where(role == rack.R_PLATE, plate_volume, vol)
    pe = np.asarray(static.plate_edges)
    rho = float(solution.fluid.density)
    cp = float(solution.fluid.specific_heat)
    flow = np.asarray(solution.network.flow, float)
    c_rate = rho * cp * np.abs(flow[pe])
    r = np.asarray(solution.plate_resistance, float)
    ntu_ok = r * c_rate > 1.0
    bad = np.flatnonzero(~ntu_ok)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{net.edge_name(int(pe[i]))}: thermal resistance {r[i]:.4g} K/W is not above 1/(m_dot c_p) = "
            f"{1.0 / c_rate[i]:.4g} K/W at {flow[pe[i]]:.4g} m^3/s; no lumped wall reproduces it"
        )
    a = (1.0 - 1.0 / (r * c_rate)) ** (1.0 / n_cells)
    g_wall = n_cells * c_rate * (1.0 / a - 1.0)
    cfg = ktr.TransportConfig(n_cells=n_cells, scheme=scheme, wall_edges=tuple(int(e) for e in pe))
    t_sup = jnp.asarray(params.supply_temperature, dt)
    inputs = ktr.TransportInputs(
        flow=jnp.asarray(flow, dt),
        heat=jnp.zeros((1, net.n_edges), dt),
        inlet_temperature=jnp.full((net.n_nodes,), t_sup, dt),
        edge_volume=jnp.asarray(vol, dt),
        node_volume=jnp.zeros((net.n_nodes,), dt),
        density=jnp.asarray(rho, dt),
        specific_heat=jnp.asarray(cp, dt),
        wall_capacity=jnp.full((pe.size,), plate_capacity, dt),
        wall_conductance=jnp.asarray(g_wall, dt),
    )
    rated = np.asarray(params.plate_power, float)[np.asarray(static.plate_type_index)]
    return RackTransport(net, cfg, inputs, tuple(int(e) for e in pe), rated, np.asarray(solution.junction, float))


def plate_power_from_trace(rt: RackTransport, accelerator_power, accelerator_rated: float):
    """Plate powers ``(n_levels, n_plates)`` W: every plate at its rated power
    scaled by ``accelerator_power / accelerator_rated`` (a trace of one
    accelerator's power, W, ``(n_levels,)``, e.g. one rack's row of
    :func:`aidc_thermo.io.traces.read_trace`)."""
    if not accelerator_rated > 0:
        raise ValueError(f"accelerator_rated must be > 0 W, got {accelerator_rated}")
    a = np.asarray(accelerator_power, float)
    return a[:, None] / accelerator_rated * rt.plate_rated_power[None, :]


def run(rt: RackTransport, plate_power, time_step, initial=None) -> ktr.TransportTrace:
    """Step the rack through ``plate_power`` (``(n_levels, n_plates)`` W, levels
    ``time_step`` s apart; pure JAX, ``jit`` with ``rt`` closed over). The
    trace's ``wall`` is every plate's junction temperature (K) in
    ``rt.plate_edges`` order. Starts from the steady state of level 0 unless
    ``initial`` is given."""
    inp = rt.inputs
    pp = jnp.asarray(plate_power, inp.flow.dtype)
    heat = jnp.zeros((pp.shape[0], rt.network.n_edges), pp.dtype).at[:, jnp.asarray(rt.plate_edges)].set(pp)
    inp = dataclasses.replace(inp, heat=heat)
    return ktr.integrate(rt.network, rt.config, inp, time_step, initial=initial)
