"""Compact (porous) cold-plate closures: the Shah & London polynomials against
the exact duct values, and exact 1D pressure drops of a straight-fin field,
fully developed and with Shah's developing-flow friction
(tests/test_porous.py asserts on these)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aidc_thermo.kernels import porous
from aidc_thermo.kernels.fv.grid import grid_from_faces

from . import reference

F64 = jnp.float64
MU, KF, KS = 1.0e-3, 0.6, 390.0
RHO = 1000.0
W_C, T_F, H = 2.0e-4, 1.0e-4, 2.0e-3  # channel width, fin thickness, fin height


def stretched(n, length, amp=0.05):
    f = np.linspace(0.0, 1.0, n + 1)
    return length * (f + amp * np.sin(2 * np.pi * f) / (2 * np.pi))


def grid(nx, ny, lx, ly, dz=(0.5e-3, 1.5e-3), dtype=F64):
    return grid_from_faces(stretched(nx, lx), stretched(ny, ly), np.concatenate([[0.0], np.cumsum(dz)]), dtype)


def shah_polynomials() -> dict:
    """The closures' Shah & London polynomials at the tabulated aspect ratios,
    next to the exact values (validation.json ``rect_duct``)."""
    r = reference("rect_duct")
    alpha = jnp.asarray(r["alpha"])
    return dict(
        alpha=np.array(r["alpha"]),
        fRe=(np.asarray(porous.shah_london_fre(alpha)), np.array(r["fRe"])),
        Nu_H1=(np.asarray(porous.shah_london_nu_h1(alpha)), np.array(r["Nu_H1"])),
        Nu_T=(np.asarray(porous.shah_london_nu_t(alpha)), np.array(r["Nu_T"])),
    )


def polynomial_fre(alpha: float) -> float:
    """Shah & London's printed f Re polynomial (validation.json), evaluated here
    independently of the kernel's."""
    c = reference("shah_london_polynomials")["fRe"]
    return c[0] * (1 + sum(ci * alpha**i for i, ci in enumerate(c[1:], start=1)))


def end_fed_fins(q: float = 3.0e-6, nx: int = 37, ny: int = 6, length: float = 0.03, width: float = 0.005) -> dict:
    """End-fed straight-fin field on a stretched grid: the computed pressure
    drop and the 1D exact one, 2 f Re mu (u / phi) L / D_h^2 with Shah &
    London's f Re of the channel (aspect ratio 0.1)."""
    g = grid(nx, ny, length, width)
    layer = porous.straight_fins((nx, ny), W_C, T_F, H, KS, KF, MU, dtype=F64)
    bc = porous.FlowBC.make((nx, ny), F64, inlet_x_lo=np.diff(stretched(ny, width)) / width, outlet_x_hi=1.0)
    flow = jax.jit(porous.solve_flow)(g, layer, bc, q)
    u = q / (width * H)
    phi = W_C / (W_C + T_F)
    dh = 2 * W_C * H / (W_C + H)
    expected = 2 * polynomial_fre(W_C / H) * MU * (u / phi) * length / dh**2
    return dict(dp=float(flow.dp), expected=expected, flow=flow, u=u, q=q)


def shah_apparent_fre(x_plus, fre):
    """Shah's apparent Fanning friction of developing flow, as printed (numpy)."""
    s = 3.44 / np.sqrt(x_plus)
    return s + (1.25 / (4 * x_plus) + fre - s) / (1 + 0.00021 / x_plus**2)


def developing_fins(q: float = 2.0e-6, nx: int = 19, ny: int = 2, length: float = 0.01, width: float = 0.002) -> dict:
    """A short straight-fin field (x+ ~ 0.02) with the developing-flow factor
    applied cell by cell: computed pressure drop, Shah's apparent-friction drop
    and the fully developed one."""
    xf = stretched(nx, length)
    g = grid_from_faces(xf, stretched(ny, width), [0.0, 1e-3], F64)
    fins = porous.straight_fins((nx, ny), W_C, T_F, H, KS, KF, MU, dtype=F64)
    phi, dh = W_C / (W_C + T_F), 2 * W_C * H / (W_C + H)
    fre = float(porous.shah_london_fre(jnp.asarray(W_C / H)))
    u_c = q / (width * H) / phi
    re = RHO * u_c * dh / MU
    factor = porous.developing_flow_factor(jnp.asarray(xf[:-1]), jnp.asarray(xf[1:]), dh, re, fre)[:, None]
    layer = porous.FinLayer(**{**fins.__dict__, "r_x": fins.r_x * factor})
    bc = porous.FlowBC.make((nx, ny), F64, inlet_x_lo=0.5, outlet_x_hi=1.0)
    flow = jax.jit(porous.solve_flow)(g, layer, bc, q)
    x_plus = length / (dh * re)
    expected = 2 * shah_apparent_fre(x_plus, fre) * MU * u_c * length / dh**2
    developed = 2 * fre * MU * u_c * length / dh**2
    return dict(dp=float(flow.dp), expected=expected, developed=developed, factor=np.asarray(factor[:, 0]),
                x_plus=x_plus, flow=flow)  # fmt: skip
