"""Pipe-network validation: a laminar pipe against Hagen-Poiseuille and a
turbulent two-pipe line against Darcy-Weisbach with the Colebrook equation
solved independently by SciPy (tests/test_network.py asserts on these)."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from scipy.optimize import brentq

from aidc_thermo.kernels.network import EdgeKind, Fluid, NetworkBuilder, NewtonOptions, solve_network

from . import reference

_OPTIONS = NewtonOptions()


def water_20c() -> dict:
    """Water at 20 degC and 1 atm (IAPWS, validation.json ``water_1atm``)."""
    r = reference("water_1atm")
    i = r["t_degC"].index(20)
    return dict(density=r["density"][i], viscosity=r["viscosity_mPa_s"][i] * 1e-3, specific_heat=r["cp"][i])


WATER = water_20c()


def fluid(dtype=jnp.float64, **kw):
    v = {**WATER, **kw}
    return Fluid(*(jnp.asarray(v[k], dtype) for k in ("density", "viscosity", "specific_heat")))


@partial(jax.jit, static_argnums=(0, 4))
def _solve(net, params, fl, bnd, options=_OPTIONS):
    return solve_network(net, params, fl, bnd, options)


def colebrook_scipy(re, rr):
    """Darcy friction factor from the Colebrook equation by a bracketed root."""
    g = lambda x: x + 2.0 * math.log10(rr / 3.7 + 2.51 * x / re)  # noqa: E731
    x = brentq(g, 0.5, 100.0, xtol=1e-15, rtol=1e-15)
    return 1.0 / x**2


def laminar_pipe(length=3.0, diameter=4.0e-3, dp=800.0) -> dict:
    """One pipe with each pipe law (Colebrook-asymptote and Churchill explicit)
    at a fixed pressure difference: the flows, Hagen-Poiseuille's and the Reynolds number."""
    b = NetworkBuilder()
    for i in range(2):
        b.node(f"in{i}", fixed=True)
        b.node(f"out{i}", fixed=True)
        b.pipe(f"in{i}", f"out{i}", length, diameter, roughness=1e-5, churchill=bool(i))
    net, params = b.build()
    p = {"in0": 1.0e5 + dp, "out0": 1.0e5, "in1": 1.0e5 + dp, "out1": 1.0e5}
    sol, info = _solve(net, params, fluid(), b.boundary(pressure=p))
    q_hp = math.pi * diameter**4 * dp / (128.0 * WATER["viscosity"] * length)
    re = 4 * WATER["density"] * q_hp / (math.pi * diameter * WATER["viscosity"])
    kinds = net.edge_kind == (EdgeKind.PIPE, EdgeKind.PIPE_CHURCHILL)
    return dict(flow=[float(x) for x in sol.flow], q_exact=q_hp, re=re, info=info, kinds_ok=kinds)


def turbulent_line(length=5.0, diameter=0.02, roughness=2e-5, dp=2.0e4) -> dict:
    """Two rough pipe halves in series (one with a minor loss K = 0.5) at a
    fixed pressure difference; the pressure drop that Darcy-Weisbach with
    SciPy's Colebrook friction gives for the computed flow."""
    b = NetworkBuilder()
    b.node("in", fixed=True)
    b.node("mid")
    b.node("out", fixed=True)
    b.pipe("in", "mid", length / 2, diameter, roughness=roughness)
    b.pipe("mid", "out", length / 2, diameter, roughness=roughness, k_minor=0.5)
    net, params = b.build()
    sol, info = _solve(net, params, fluid(), b.boundary(pressure={"in": 2e5 + dp, "out": 2e5}))
    q = float(sol.flow[0])
    rho, mu = WATER["density"], WATER["viscosity"]
    u = q / (math.pi * diameter**2 / 4)
    re = rho * u * diameter / mu
    f = colebrook_scipy(re, roughness / diameter)
    dp_ref = (f * length / diameter + 0.5) * rho * u * u / 2
    return dict(dp=dp, dp_ref=dp_ref, flow=[q, float(sol.flow[1])], re=re, info=info)
