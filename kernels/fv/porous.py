"""Compact ("porous") cold-plate model: a fin field as a volume-averaged medium.

The fin layer of a cold plate (height ``H`` above the base) is described per
in-plane cell ``(i, j)`` of a non-uniform grid (:mod:`kernels.fv.grid`) by
volume-averaged closures; the base, lid and package layers below it are
resolved in 3D. The flow is steady; the energy is solved steady
(:func:`solve_energy`) or in time for a given flow (:func:`integrate_energy`,
"Energy in time" below). SI units, temperatures in K or °C (linear
equations: one unit throughout).

Flow (depth-averaged over the fin layer, 2D in x-y)
---------------------------------------------------
Darcy-Forchheimer law on the superficial velocity ``u`` (volume flow per unit
cross-section of the layer, m/s), per direction (anisotropic)::

    -dp/dx = (r_x + beta_x |u|) u_x ,   -dp/dy = (r_y + beta_y |u|) u_y

``r = mu / K`` (Pa s/m^2) is the viscous resistivity and ``beta`` (kg/m^4) the
Forchheimer coefficient. Straight fins along x have ``r_x`` from the
fully developed channel friction ``f Re`` (Shah & London) and ``r_y`` very
large (no flow across the fins). Open plena are clear fluid with the
Hele-Shaw wall friction ``r = 12 mu / H^2`` of a gap of height ``H``.
The Brinkman (in-plane viscous diffusion) term is NOT included: in a fin field
it matters only within about sqrt(K) (a fraction of one channel width) of a
side wall, and the wall friction of the top and bottom plates, which
dominates in plena, is the Hele-Shaw term.

Mass conservation with the law above gives a symmetric 7-point conductance
operator for the pressure (one cell in z), solved by
:func:`kernels.solvers.linsolve.solve`. The Forchheimer term is handled by Picard
iteration (resistivity evaluated with the previous speed) in a
``lax.while_loop``. Inflow: a fraction of the total flow ``Q`` per cell (a
slot feeding the fin layer from above, e.g. centre-fed split flow) and/or per
side-face cell (an inlet on a side of the field). Outflow: side-face cells
held at gauge pressure 0. All other sides are walls.

Energy (two temperatures in the fin layer, conduction in the stack)
-------------------------------------------------------------------
Unknowns per column ``(i, j)``: the solid stack temperatures (``nb`` layers of
the input grid, base on top), the mean fin temperature ``T_s`` and the bulk
(mixed-mean) fluid temperature ``T_f`` of the fin layer. Links:

* stack cells: 3D conduction, harmonic-mean links (as :mod:`kernels.fv.conduction`);
  heat-flux power map ``q`` (W/m^2) on the bottom face, other faces adiabatic;
* the base surface joins three conductances: the base top half cell, the
  fin root conductance ``g_root`` to the mean fin temperature (W/m^2/K per
  plan area) and the floor conductance ``g_floor = h`` times the wetted floor
  fraction (channel bottoms) to the fluid; the surface node is eliminated
  exactly (star-mesh transform) into base-fin, base-fluid and fin-fluid links;
* fin -> fluid: interstitial conductance ``g_fin = h a H`` (W/m^2/K per plan
  area: h times the fin surface per plan area);
* in-plane: fin conduction ``k_s`` and fluid conduction ``k_f`` per direction
  (effective, on the full layer section); the fluid is advected upwind by the
  face flows of the flow solve (first order in the flow direction).

Fin height is represented exactly by the 1D fin solution instead of more
cells: for a fin with uniform ``h`` and fluid temperature over its height and
an adiabatic tip, the heat is ``eta h A (T_root - T_f)`` and the mean fin
temperature ``T_f + eta (T_root - T_f)``; two conductances in series,
``g_fin = h A`` and ``g_root = h A eta / (1 - eta)`` reproduce both (see
:func:`fin_root_conductance`). So no fin efficiency enters the interstitial
coefficient itself, ``T_s`` is the true mean fin temperature, and in-plane
fin conduction acts on it. The assumption matches the closures: ``Nu`` is
defined with the bulk fluid temperature of the whole channel section.

The coupled linear system is solved as one operator on a stacked grid of
shape ``(nx, ny, nb + 2)`` (layers: stack, fin, fluid) by BiCGSTAB
(:func:`kernels.solvers.krylov.bicgstab`) preconditioned by the advection-diffusion
multigrid of :mod:`kernels.fv.advdiff`; the one link that is not between
neighbours (base top -> fluid, skipping the fin cell) is applied in the
matrix-vector product and enters the preconditioner through its diagonal.

Derivatives: both linear solves are wrapped in ``lax.custom_linear_solve``
(implicit differentiation, one adjoint solve each). With Forchheimer terms
the flow derivative is taken through the last Picard operator with the speed
held fixed: exact for Darcy flow (``beta = 0``), approximate otherwise
(measured: 1e-5 relative for dP and 5e-4 for R on a Forchheimer-dominated
isotropic field).

Energy in time
--------------
:func:`integrate_energy` adds the heat capacity of every unknown (stack
cells ``rho c V``, the fin solid ``(1 - phi) rho c H A``, the coolant
``phi rho c_p H A``: :class:`HeatCapacity`) to the same operator, with the
flow held, and steps ``C dT/dt = -A T + s(t) b_q + t_in(t) b_in`` by backward
Euler, BDF2 or Crank-Nicolson: each step is one BiCGSTAB solve of the
steady operator with ``a C/dt`` added to its diagonal (better conditioned
than the steady system), with the steady solve's multigrid and adjoint.

Closures (straight fins, :func:`straight_fins`): Shah & London (1978)
fully developed ``f Re`` and ``Nu`` polynomials for a rectangular duct of
aspect ratio ``alpha`` (Kakac, Shah & Aung 1987, Handbook of Single-Phase
Convective Heat Transfer, ch. 3), optionally Shah's apparent friction for
developing flow (:func:`shah_apparent_fre`). Pin fins (:func:`pin_fins`):
Zukauskas (1972, Adv. Heat Transfer 8, 93-160; as tabulated in Incropera &
DeWitt, Tables 7.5/7.7) for heat transfer; friction is given as a Darcy-
Forchheimer pair (the case type fits it to the Zukauskas friction charts,
``thermo/models/pin_friction.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..diagnostics import SolveInfo
from ..solvers import krylov, linsolve
from ..solvers.linsolve import Conductances
from . import advdiff
from .grid import Grid

__all__ = [
    "shah_london_fre",
    "shah_london_nu_t",
    "shah_london_nu_h1",
    "shah_apparent_fre",
    "developing_flow_factor",
    "fin_efficiency",
    "fin_root_conductance",
    "closure_lookup",
    "FinLayer",
    "straight_fins",
    "pin_fins",
    "plenum",
    "select",
    "FlowBC",
    "FlowConfig",
    "Flow",
    "solve_flow",
    "Stack",
    "EnergyConfig",
    "Thermal",
    "solve_energy",
    "junction_temperature",
    "thermal_resistance",
    "TIME_SCHEMES",
    "HeatCapacity",
    "TimeConfig",
    "cell_heat_capacities",
    "stored_heat",
    "integrate_energy",
]


# --------------------------------------------------------------------------- closures


def _poly(alpha, lead, coeffs):
    out = jnp.ones_like(alpha)
    p = jnp.ones_like(alpha)
    for c in coeffs:
        p = p * alpha
        out = out + c * p
    return lead * out


def shah_london_fre(alpha):
    """Fully developed Fanning ``f Re`` of a rectangular duct, aspect ratio
    ``alpha`` = short / long side in [0, 1] (Shah & London 1978 polynomial;
    24 for parallel plates, 14.23 for a square; within 0.05% of the series)."""
    return _poly(alpha, 24.0, (-1.3553, 1.9467, -1.7012, 0.9564, -0.2537))


def shah_london_nu_t(alpha):
    """Fully developed ``Nu_T`` (uniform wall temperature) of a rectangular
    duct, four walls heated (Shah & London 1978 polynomial)."""
    return _poly(alpha, 7.541, (-2.610, 4.970, -5.119, 2.702, -0.548))


def shah_london_nu_h1(alpha):
    """Fully developed ``Nu_H1`` (axially uniform flux, peripherally uniform
    wall temperature) of a rectangular duct (Shah & London 1978 polynomial)."""
    return _poly(alpha, 8.235, (-2.0421, 3.0853, -2.4765, 1.0578, -0.1861))


def shah_apparent_fre(x_plus, fre_fd):
    """Shah's apparent Fanning friction ``f_app Re`` for hydrodynamically
    developing laminar flow from a uniform inlet profile, ``x+ = x / (D_h Re)``
    (Shah 1978; Shah & London 1978 eq. 192):
    ``3.44/sqrt(x+) + (1.25/(4 x+) + fRe - 3.44/sqrt(x+)) / (1 + 0.00021 x+^-2)``.
    The total pressure drop over a length ``L`` is ``2 f_app Re mu u L / D_h^2``
    (includes the excess loss ``K(inf) = 1.25`` of the developing profile)."""
    s = jnp.sqrt(x_plus)
    return 3.44 / s + (1.25 / (4.0 * x_plus) + fre_fd - 3.44 / s) / (1.0 + 0.00021 / x_plus**2)


def developing_flow_factor(x_start, x_end, dh, reynolds, fre_fd):
    """Multiplier of the fully developed viscous resistivity of a channel
    segment ``[x_start, x_end]`` (distance from the channel entrance, m) that
    makes the segment's pressure drop the increment of Shah's apparent
    friction: ``[Phi(x_end+) - Phi(x_start+)] / (fRe (x_end+ - x_start+))`` with
    ``Phi(x+) = f_app Re(x+) x+`` (``Phi(0) = 0``). Summed over the segments of
    a channel it gives exactly ``2 f_app Re mu u L / D_h^2``. ``reynolds`` is
    the channel Reynolds number ``rho u_c D_h / mu`` at the operating point
    (the factor is evaluated there, so the flow solve stays linear in it)."""

    def phi(x):
        xp = jnp.maximum(x / (dh * reynolds), 1e-30)
        return shah_apparent_fre(xp, fre_fd) * xp

    xs = jnp.maximum(x_start, 0.0)
    dx_plus = (x_end - xs) / (dh * reynolds)
    return (phi(x_end) - jnp.where(xs > 0, phi(xs), 0.0)) / (fre_fd * dx_plus)


def fin_efficiency(m_height):
    """``eta = tanh(mH) / (mH)`` of a straight fin with an adiabatic tip."""
    mh = jnp.maximum(m_height, 1e-6)
    return jnp.tanh(mh) / mh


def fin_root_conductance(g_fin, m_height):
    """Root-to-mean-fin conductance ``g_fin eta / (1 - eta)`` (same units as
    ``g_fin``) that, in series with ``g_fin = h A_fin``, reproduces the heat and
    the mean temperature of a 1D fin with adiabatic tip. For ``mH -> 0`` it
    tends to ``3 k A_c / H`` (series form used below ``mH = 1e-2``)."""
    mh = jnp.maximum(m_height, 1e-12)
    eta = fin_efficiency(mh)
    one_minus = jnp.where(mh < 1e-2, mh**2 / 3.0 - 2.0 * mh**4 / 15.0, 1.0 - eta)
    return g_fin * eta / one_minus


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FinLayer:
    """Volume-averaged properties of the fin layer, per in-plane cell.

    All arrays have shape ``(nx, ny)`` (scalars are broadcast by the helpers).

    Attributes:
        height: fin (layer) height H, m (scalar).
        r_x, r_y: viscous resistivity mu/K on the superficial velocity, Pa s/m^2.
        beta_x, beta_y: Forchheimer coefficients, kg/m^4 (0 for Darcy).
        k_sx, k_sy: effective in-plane conductivity of the fin solid, W/m/K,
            on the full layer section (e.g. ``(1 - phi) k_fin`` along fins).
        k_fx, k_fy: effective in-plane conductivity of the fluid, W/m/K.
        g_root: base-surface to mean-fin conductance per plan area, W/m^2/K.
        g_fin: fin to bulk-fluid conductance per plan area (``h a H``), W/m^2/K.
        g_floor: base-surface to fluid conductance per plan area, W/m^2/K.
    """

    height: jax.Array
    r_x: jax.Array
    r_y: jax.Array
    beta_x: jax.Array
    beta_y: jax.Array
    k_sx: jax.Array
    k_sy: jax.Array
    k_fx: jax.Array
    k_fy: jax.Array
    g_root: jax.Array
    g_fin: jax.Array
    g_floor: jax.Array


def _natural_spline_matrix(nodes: np.ndarray) -> np.ndarray:
    """``(n, n)``: the second derivatives at ``nodes`` of the natural cubic
    spline through values ``y`` are ``S @ y`` (zero at both ends; all zero
    for two nodes, where the spline is the straight line)."""
    n = len(nodes)
    out = np.zeros((n, n))
    if n < 3:
        return out
    h = np.diff(nodes)
    a = np.zeros((n - 2, n - 2))
    b = np.zeros((n - 2, n))
    for i in range(1, n - 1):
        r = i - 1
        a[r, r] = 2 * (h[i - 1] + h[i])
        if r > 0:
            a[r, r - 1] = h[i - 1]
        if r < n - 3:
            a[r, r + 1] = h[i]
        b[r, i - 1], b[r, i], b[r, i + 1] = 6 / h[i - 1], -6 / h[i - 1] - 6 / h[i], 6 / h[i]
    out[1:-1] = np.linalg.solve(a, b)
    return out


def _spline(nodes: np.ndarray, values, x):
    """The natural cubic spline through ``values`` (leading axis over the
    increasing ``nodes``, a numpy constant) at ``x`` (traced scalar):
    continuous value, slope and curvature; one node gives its value. Outside
    the nodes the end pieces are extrapolated."""
    n = len(nodes)
    if n == 1:
        return values[0]
    dtype = values.dtype
    m = jnp.tensordot(jnp.asarray(_natural_spline_matrix(nodes), dtype), values, axes=1)
    xs = jnp.asarray(nodes, dtype)
    k = jnp.clip(jnp.searchsorted(xs, x, side="right") - 1, 0, n - 2)
    x0, x1 = xs[k], xs[k + 1]
    h = x1 - x0
    a, b = (x1 - x) / h, (x - x0) / h
    return a * values[k] + b * values[k + 1] + ((a**3 - a) * m[k] + (b**3 - b) * m[k + 1]) * (h * h / 6)


def closure_lookup(reynolds, channel_width, fin_thickness, table_re, widths, thicknesses, fre, nusselt):
    """``(f Re, Nu)`` of a calibrated closure grid (``fre``, ``nusselt`` of
    shape ``(nw, nt, n)``: unit cells of channel ``widths`` (nw,) x fin
    ``thicknesses`` (nt,), each at the Reynolds numbers ``table_re`` (n,)),
    at a channel Reynolds number, channel width and fin thickness (traced
    scalars; m): linear in Re (held at the end values outside ``table_re``,
    as ``jnp.interp``), then natural cubic splines of the logarithm of the
    value over the logarithm of the width, and then of the thickness (the
    closures change with the geometry roughly as powers of it), so that the
    closures and their derivatives with respect to the geometry are
    continuous across the calibrated cells. An axis of one cell is constant.
    ``table_re``, ``widths``, ``thicknesses`` are numpy constants
    (increasing); outside the widths and thicknesses the splines
    extrapolate: check the range first. Values must be positive."""
    fre, nusselt = jnp.asarray(fre), jnp.asarray(nusselt)
    dtype = jnp.result_type(fre, nusselt)
    table_re = np.asarray(table_re, np.float64)
    res = jnp.asarray(table_re, dtype)
    re = jnp.asarray(reynolds, dtype)
    k = jnp.clip(jnp.searchsorted(res, re, side="right") - 1, 0, len(table_re) - 2)
    s = jnp.clip((re - res[k]) / (res[k + 1] - res[k]), 0.0, 1.0)
    out = []
    log_w, log_t = (jnp.log(jnp.asarray(v, dtype)) for v in (channel_width, fin_thickness))
    for v in (fre.astype(dtype), nusselt.astype(dtype)):
        at_re = v[..., k] * (1 - s) + v[..., k + 1] * s  # (nw, nt)
        if len(widths) == len(thicknesses) == 1:
            out.append(at_re[0, 0])
            continue
        along_t = _spline(np.log(np.asarray(widths, np.float64)), jnp.log(at_re), log_w)  # (nt,)
        out.append(jnp.exp(_spline(np.log(np.asarray(thicknesses, np.float64)), along_t, log_t)))
    return out[0], out[1]


def _layer(shape, dtype, **fields) -> FinLayer:
    out = {}
    for name in FinLayer.__dataclass_fields__:
        v = jnp.asarray(fields[name], dtype)
        out[name] = v if name == "height" else jnp.broadcast_to(v, shape)
    return FinLayer(**out)


def straight_fins(
    shape,
    channel_width,
    fin_thickness,
    height,
    k_fin,
    k_fluid,
    mu,
    nu="H1",
    cross_ratio=1e-6,
    dtype=None,
    fre=None,
    nusselt=None,
) -> FinLayer:
    """Closures of a field of straight rectangular channels along x.

    Channel ``w`` x ``H`` (pitch ``w + t``), porosity ``phi = w / (w + t)``,
    ``D_h = 2 w H / (w + H)``, ``alpha = min(w, H) / max(w, H)``.

    * Friction (Shah & London): ``-dp/dx = 2 fRe mu u_c / D_h^2`` with the
      channel velocity ``u_c = u / phi``: ``r_x = 2 fRe mu / (phi D_h^2)``;
      across the fins ``r_y = r_x / cross_ratio`` (walls; kept finite so that
      the pressure operator stays definite).
    * Heat transfer: ``h = Nu k_f / D_h`` (``nu`` = "H1" or "T", four-wall
      polynomial); fin surface ``2 H`` and
      floor ``w`` per pitch: ``g_fin = 2 h H / p``, ``g_floor = h w / p``;
      ``m = sqrt(2 h / (k_fin t))``, ``g_root`` from :func:`fin_root_conductance`.
    * Conduction: fins along x ``(1 - phi) k_fin``, fluid along x ``phi k_f``;
      across the fins both phases are interrupted by the other one: the
      series value ``1 / (phi / k_f + (1 - phi) / k_fin)`` is given to the
      solid and the fluid gets none (its lateral heat goes through the fins).

    ``fre`` and ``nusselt``, when given, replace the Shah & London ``f Re``
    and ``Nu`` (on ``D_h``, heat transfer per wetted fin + floor area), e.g.
    values calibrated on resolved unit cells and interpolated at the
    operating Reynolds number (``nu`` is then ignored).

    Scalars may be traced (for derivatives with respect to the geometry).
    """
    dtype = dtype or jnp.result_type(float)
    w = jnp.asarray(channel_width, dtype)
    t = jnp.asarray(fin_thickness, dtype)
    H = jnp.asarray(height, dtype)
    kf = jnp.asarray(k_fluid, dtype)
    ks = jnp.asarray(k_fin, dtype)
    mu = jnp.asarray(mu, dtype)
    p = w + t
    phi = w / p
    dh = 2.0 * w * H / (w + H)
    alpha = jnp.minimum(w, H) / jnp.maximum(w, H)
    fre = shah_london_fre(alpha) if fre is None else jnp.asarray(fre, dtype)
    if nusselt is not None:
        nusselt = jnp.asarray(nusselt, dtype)
    elif nu == "H1":
        nusselt = shah_london_nu_h1(alpha)
    elif nu == "T":
        nusselt = shah_london_nu_t(alpha)
    else:
        raise ValueError(f"unknown Nusselt boundary condition {nu!r}; use 'H1' or 'T'")
    h = nusselt * kf / dh
    r_x = 2.0 * fre * mu / (phi * dh**2)
    g_fin = 2.0 * h * H / p
    mh = jnp.sqrt(2.0 * h / (ks * t)) * H
    zero = jnp.zeros((), dtype)
    return _layer(
        shape,
        dtype,
        height=H,
        r_x=r_x,
        r_y=r_x / cross_ratio,
        beta_x=zero,
        beta_y=zero,
        k_sx=(1.0 - phi) * ks,
        k_sy=1.0 / (phi / kf + (1.0 - phi) / ks),
        k_fx=phi * kf,
        k_fy=zero,
        g_root=fin_root_conductance(g_fin, mh),
        g_fin=g_fin,
        g_floor=h * w / p,
    )


def pin_fins(
    shape,
    diameter,
    pitch_t,
    pitch_l,
    height,
    k_fin,
    k_fluid,
    rho,
    mu,
    prandtl,
    superficial_speed,
    r_darcy,
    beta,
    staggered=True,
    dtype=None,
) -> FinLayer:
    """Closures of a pin-fin field (circular pins, in-line or staggered).

    Heat transfer: Zukauskas (1972) tube-bank correlation
    ``Nu_D = C Re_max^m Pr^0.36`` (Pr/Pr_s correction omitted) on the maximum
    velocity ``u_max = u S_T / (S_T - D)``, evaluated at the given
    ``superficial_speed`` (e.g. the mean of the field at the operating flow):
    Re_max 10-100: C = 0.80, m = 0.40 (in-line), C = 0.90, m = 0.40
    (staggered); 100-1000: single cylinder C = 0.51, m = 0.5; above 1000:
    in-line 0.27/0.63, staggered 0.35 (S_T/S_L)^0.2 / 0.60. Valid for long
    tubes with at least 20 rows; pins with end walls and few rows deviate
    (calibrate from resolved unit cells).

    Friction: give the Darcy resistivity ``r_darcy`` (mu/K) and Forchheimer
    ``beta`` (isotropic in-plane), e.g. fitted to resolved unit cells or to a
    published friction chart (:mod:`thermo.models.pin_friction` fits the Zukauskas
    charts). ``Re_max`` here uses the transverse gap ``S_T - D`` even where a
    staggered bank's diagonal gap is narrower.

    Fin surface per plan area ``pi D H / (S_T S_L)``, floor fraction
    ``1 - pi D^2 / (4 S_T S_L)``, ``m = sqrt(4 h / (k_fin D))``; the pins do
    not conduct in-plane; fluid conduction ``phi k_f``.
    """
    dtype = dtype or jnp.result_type(float)
    D = jnp.asarray(diameter, dtype)
    st = jnp.asarray(pitch_t, dtype)
    sl = jnp.asarray(pitch_l, dtype)
    H = jnp.asarray(height, dtype)
    kf = jnp.asarray(k_fluid, dtype)
    u = jnp.asarray(superficial_speed, dtype)
    cell = st * sl
    phi = 1.0 - jnp.pi * D**2 / (4.0 * cell)
    re = jnp.asarray(rho, dtype) * u * st / (st - D) * D / jnp.asarray(mu, dtype)
    if staggered:
        c_lo, c_hi, m_hi = 0.90, 0.35 * (st / sl) ** 0.2, 0.60
    else:
        c_lo, c_hi, m_hi = 0.80, 0.27, 0.63
    c = jnp.where(re < 100.0, c_lo, jnp.where(re < 1000.0, 0.51, c_hi))
    m = jnp.where(re < 100.0, 0.40, jnp.where(re < 1000.0, 0.5, m_hi))
    nusselt = c * re**m * jnp.asarray(prandtl, dtype) ** 0.36
    h = nusselt * kf / D
    g_fin = h * jnp.pi * D * H / cell
    mh = jnp.sqrt(4.0 * h / (jnp.asarray(k_fin, dtype) * D)) * H
    zero = jnp.zeros((), dtype)
    return _layer(
        shape,
        dtype,
        height=H,
        r_x=r_darcy,
        r_y=r_darcy,
        beta_x=beta,
        beta_y=beta,
        k_sx=zero,
        k_sy=zero,
        k_fx=phi * kf,
        k_fy=phi * kf,
        g_root=fin_root_conductance(g_fin, mh),
        g_fin=g_fin,
        g_floor=h * phi,
    )


def plenum(shape, height, k_fluid, mu, dtype=None) -> FinLayer:
    """Open plenum of gap ``H``: Hele-Shaw friction ``r = 12 mu / H^2``
    (isotropic), clear-fluid conduction, floor heat transfer of parallel
    plates with one wall heated (Nu = 5.385 on D_h = 2H, Shah & London).
    The fin cell of a plenum column is coupled to the fluid only (no root)."""
    dtype = dtype or jnp.result_type(float)
    H = jnp.asarray(height, dtype)
    kf = jnp.asarray(k_fluid, dtype)
    r = 12.0 * jnp.asarray(mu, dtype) / H**2
    h = (70.0 / 13.0) * kf / (2.0 * H)
    zero = jnp.zeros((), dtype)
    return _layer(
        shape,
        dtype,
        height=H,
        r_x=r,
        r_y=r,
        beta_x=zero,
        beta_y=zero,
        k_sx=zero,
        k_sy=zero,
        k_fx=kf,
        k_fy=kf,
        g_root=zero,
        g_fin=h,
        g_floor=h,
    )


def select(mask, a: FinLayer, b: FinLayer) -> FinLayer:
    """Per cell ``a`` where ``mask`` (bool, ``(nx, ny)``), else ``b``; heights
    must agree (the layer has one height)."""
    return jax.tree_util.tree_map(lambda x, y: x if x.ndim == 0 else jnp.where(mask, x, y), a, b)


# --------------------------------------------------------------------------- flow

_SIDES = (("x_lo", 0, 0), ("x_hi", 0, 1), ("y_lo", 1, 0), ("y_hi", 1, 1))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FlowBC:
    """Inlets and outlets of the fin layer.

    Attributes:
        inlet_cells: fraction of the total flow entering each cell from above,
            ``(nx, ny)``.
        inlet_x_lo, inlet_x_hi: fraction entering through each side-face cell,
            ``(ny,)``; inlet_y_lo, inlet_y_hi: ``(nx,)``. All inlet fractions
            together sum to 1.
        outlet_x_lo, ..., outlet_y_hi: 1 where the side-face cell is an outlet
            at gauge pressure 0, else 0 (shapes as the inlets). At least one.
    """

    inlet_cells: jax.Array
    inlet_x_lo: jax.Array
    inlet_x_hi: jax.Array
    inlet_y_lo: jax.Array
    inlet_y_hi: jax.Array
    outlet_x_lo: jax.Array
    outlet_x_hi: jax.Array
    outlet_y_lo: jax.Array
    outlet_y_hi: jax.Array

    @staticmethod
    def make(shape, dtype=None, **given) -> FlowBC:
        """Zero everywhere except the given arrays (broadcast to their shapes)."""
        dtype = dtype or jnp.result_type(float)
        nx, ny = shape
        shapes = {"inlet_cells": (nx, ny), "x_lo": (ny,), "x_hi": (ny,), "y_lo": (nx,), "y_hi": (nx,)}
        out = {}
        for name in FlowBC.__dataclass_fields__:
            key = "inlet_cells" if name == "inlet_cells" else name.split("_", 1)[1]
            out[name] = jnp.broadcast_to(jnp.asarray(given.get(name, 0.0), dtype), shapes[key])
        unknown = set(given) - set(out)
        if unknown:
            raise ValueError(f"unknown FlowBC fields {sorted(unknown)}")
        return FlowBC(**out)

    def inlet(self, side):
        return getattr(self, "inlet_" + side)

    def outlet(self, side):
        return getattr(self, "outlet_" + side)


@dataclass(frozen=True)
class FlowConfig:
    """Static settings of the flow solve.

    Attributes:
        multigrid: pressure solve settings (put ``line_axis`` along the
            channels; axis 2 is the single layer cell).
        picard_tol: relative pressure change at which Picard stops; None:
            1e-10 (float64) / 1e-5 (float32).
        max_picard: Picard iteration limit (1 solve suffices for Darcy).
    """

    multigrid: linsolve.MultigridConfig = linsolve.MultigridConfig(line_axis=0)
    picard_tol: float | None = None
    max_picard: int = 60

    def tolerance(self, dtype) -> float:
        if self.picard_tol is not None:
            return self.picard_tol
        return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Flow:
    """Flow solution.

    Attributes:
        p: cell pressure, Pa (gauge, outlets at 0), ``(nx, ny)``.
        qx, qy: face volume flows, m^3/s, ``(nx + 1, ny)`` and ``(nx, ny + 1)``
            (positive along +axis; boundary entries are inflows/outflows).
        q_cells: volume flow entering each cell from above, ``(nx, ny)``.
        ux, uy: cell-centre superficial velocities, m/s.
        dp: flow-weighted mean inlet pressure minus outlet pressure, Pa
            (side inlets at the face, extrapolated through the half cell).
        info: Picard diagnostics (residual: relative pressure change).
        linear_info: diagnostics of the last pressure solve.
    """

    p: jax.Array
    qx: jax.Array
    qy: jax.Array
    q_cells: jax.Array
    ux: jax.Array
    uy: jax.Array
    dp: jax.Array
    info: SolveInfo
    linear_info: SolveInfo


def _put_side(values, shape, axis, side):
    """Scatter a side array ((ny,) or (nx,)) onto the boundary cells of a 2D field."""
    slab = jnp.expand_dims(values, axis)
    n = shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (0, n - 1) if side == 0 else (n - 1, 0)
    return jnp.pad(slab, pad)


def _take_side(field, axis, side):
    n = field.shape[axis]
    idx = 0 if side == 0 else n - 1
    return jnp.squeeze(lax.slice_in_dim(field, idx, idx + 1, axis=axis), axis)


def _half_resistances(grid: Grid, layer: FinLayer, speed):
    """Half-cell hydraulic resistances per direction, Pa s/m^3."""
    H = layer.height
    dx = grid.dx[:, None]
    dy = grid.dy[None, :]
    rx = layer.r_x + layer.beta_x * speed
    ry = layer.r_y + layer.beta_y * speed
    return rx * 0.5 * dx / (dy * H), ry * 0.5 * dy / (dx * H)


def _pressure_links(Rx, Ry, bc: FlowBC):
    """Face conductances (m^3/s/Pa), 2D: interior series links plus outlet links."""
    gx_int = 1.0 / (Rx[:-1] + Rx[1:])
    gy_int = 1.0 / (Ry[:, :-1] + Ry[:, 1:])
    gx = jnp.concatenate([(bc.outlet_x_lo / Rx[0])[None], gx_int, (bc.outlet_x_hi / Rx[-1])[None]], axis=0)
    gy = jnp.concatenate([(bc.outlet_y_lo / Ry[:, 0])[:, None], gy_int, (bc.outlet_y_hi / Ry[:, -1])[:, None]], axis=1)
    return gx, gy


def _inflow(bc: FlowBC, q_total, shape):
    """Volume flow entering each cell (cells from above plus side inlets)."""
    src = bc.inlet_cells * q_total
    for name, axis, side in _SIDES:
        src = src + _put_side(bc.inlet(name) * q_total, shape, axis, side)
    return src


def _face_flows(p, gx, gy, bc: FlowBC, q_total):
    qx_int = gx[1:-1] * (p[:-1] - p[1:])
    qy_int = gy[:, 1:-1] * (p[:, :-1] - p[:, 1:])
    # boundary faces: inflow positive inward, outflow g (p - 0) outward
    qx_lo = bc.inlet_x_lo * q_total - gx[0] * p[0]
    qx_hi = gx[-1] * p[-1] - bc.inlet_x_hi * q_total
    qy_lo = bc.inlet_y_lo * q_total - gy[:, 0] * p[:, 0]
    qy_hi = gy[:, -1] * p[:, -1] - bc.inlet_y_hi * q_total
    qx = jnp.concatenate([qx_lo[None], qx_int, qx_hi[None]], axis=0)
    qy = jnp.concatenate([qy_lo[:, None], qy_int, qy_hi[:, None]], axis=1)
    return qx, qy


def _speed(grid, layer, qx, qy):
    H = layer.height
    ux = 0.5 * (qx[:-1] + qx[1:]) / (grid.dy[None, :] * H)
    uy = 0.5 * (qy[:, :-1] + qy[:, 1:]) / (grid.dx[:, None] * H)
    return ux, uy


def _pressure_solve(grid, layer, bc, q_total, speed, config: FlowConfig):
    shape = layer.r_x.shape
    Rx, Ry = _half_resistances(grid, layer, speed)
    gx, gy = _pressure_links(Rx, Ry, bc)
    z = jnp.zeros(shape + (2,), gx.dtype)
    op = Conductances(gx[..., None], gy[..., None], z, jnp.zeros(shape + (1,), gx.dtype))
    b = _inflow(bc, q_total, shape)[..., None]
    p, info = linsolve.solve(op, b, config.multigrid)
    return p[..., 0], gx, gy, Rx, Ry, info


def solve_flow(grid: Grid, layer: FinLayer, bc: FlowBC, q_total, config: FlowConfig | None = None) -> Flow:
    """Steady depth-averaged Darcy-Forchheimer flow in the fin layer.

    Args:
        grid: in-plane grid (its dx, dy are used; dz is ignored).
        layer: closures per cell (:func:`straight_fins`, :func:`plenum`, ...).
        bc: inlets and outlets.
        q_total: total volume flow, m^3/s (traced scalar).
        config: static settings.

    Returns:
        :class:`Flow`.
    """
    config = config or FlowConfig()
    dtype = layer.r_x.dtype
    q_total = jnp.asarray(q_total, dtype)
    tol = config.tolerance(dtype)
    shape = layer.r_x.shape
    stop = lax.stop_gradient

    def picard(speed):
        p, gx, gy, _, _, info = _pressure_solve(stop(grid), stop(layer), stop(bc), stop(q_total), speed, config)
        qx, qy = _face_flows(p, gx, gy, stop(bc), stop(q_total))
        ux, uy = _speed(stop(grid), stop(layer), qx, qy)
        return p, jnp.sqrt(ux**2 + uy**2), info

    zero = jnp.zeros(shape, dtype)
    p0, s0, info0 = picard(zero)
    hist = jnp.full((config.max_picard + 1,), jnp.nan, dtype).at[0].set(1.0)
    nonlinear = jnp.any(layer.beta_x != 0) | jnp.any(layer.beta_y != 0)

    def cond(s):
        _, _, k, res, _, ok = s
        return nonlinear & (k < config.max_picard) & (res > tol) & ok

    def body(s):
        p, speed, k, _, h, _ = s
        p_new, s_new, info = picard(speed)
        res = jnp.max(jnp.abs(p_new - p)) / jnp.maximum(jnp.max(jnp.abs(p_new)), jnp.finfo(dtype).tiny)
        return p_new, s_new, k + 1, res, h.at[k + 1].set(res), info.converged

    k0 = jnp.asarray(0, jnp.int32)
    res0 = jnp.where(nonlinear, jnp.ones((), dtype), jnp.zeros((), dtype))
    _, speed, k, res, hist, ok = lax.while_loop(cond, body, (p0, s0, k0, res0, hist, info0.converged))
    # final solve with traced inputs (implicit derivatives; speed held fixed)
    p, gx, gy, Rx, Ry, lin = _pressure_solve(grid, layer, bc, q_total, stop(speed), config)
    qx, qy = _face_flows(p, gx, gy, bc, q_total)
    ux, uy = _speed(grid, layer, qx, qy)
    # flow-weighted inlet pressure: cells at their centre, side faces extrapolated
    p_in = jnp.sum(bc.inlet_cells * q_total * p)
    for name, axis, side in _SIDES:
        R = Rx if axis == 0 else Ry
        q_in = bc.inlet(name) * q_total
        p_in = p_in + jnp.sum(q_in * (_take_side(p, axis, side) + q_in * _take_side(R, axis, side)))
    dp = p_in / q_total
    converged = ok & lin.converged & (res <= tol)
    info = SolveInfo(converged=converged, iterations=k, residual=res, history=hist)
    return Flow(p, qx, qy, bc.inlet_cells * q_total, ux, uy, dp, info, lin)


# --------------------------------------------------------------------------- energy


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Stack:
    """The solid layers under the fin layer and the heat input.

    Attributes:
        k: conductivity per cell, ``(nx, ny, nb)``, W/m/K (z up: package/TIM
            at the bottom, base plate on top; the grid's dz are their
            thicknesses).
        q: heat flux into the bottom face, ``(nx, ny)``, W/m^2 (power map).
    """

    k: jax.Array
    q: jax.Array


@dataclass(frozen=True)
class EnergyConfig:
    """Static settings of the energy solve (BiCGSTAB + advection-diffusion
    multigrid; ``line_axis`` 0 = x lines along the channels, 2 = z columns)."""

    krylov: advdiff.KrylovConfig = advdiff.KrylovConfig(line_axis=0)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Thermal:
    """Energy solution.

    Attributes:
        T_stack: solid stack temperatures ``(nx, ny, nb)``; ``[..., 0]`` is the
            bottom (junction side) layer.
        T_fin: mean fin temperature ``(nx, ny)``.
        T_fluid: bulk fluid temperature ``(nx, ny)``.
        heat_in: power into the bottom face, W.
        heat_out: net enthalpy carried out by the fluid, W.
        info: BiCGSTAB diagnostics.
    """

    T_stack: jax.Array
    T_fin: jax.Array
    T_fluid: jax.Array
    heat_in: jax.Array
    heat_out: jax.Array
    info: SolveInfo


def _harmonic_links(k, d, area, axis):
    """Interior conductances between neighbouring cells along ``axis`` (W/K);
    0 where either conductivity is 0. ``d``: widths broadcast along axis."""
    n = k.shape[axis]

    def sl(a, lo, hi):
        return lax.slice_in_dim(a, lo, hi, axis=axis)

    kp, ke = sl(k, 0, n - 1), sl(k, 1, n)
    dp_, de = sl(d, 0, n - 1), sl(d, 1, n)
    num = 2.0 * kp * ke
    den = kp * de + ke * dp_
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0) * area


def _energy_operator(grid: Grid, layer: FinLayer, stack: Stack, flow: Flow, rho_cp):
    """Stacked advection-diffusion operator, the skip link (base top <-> fluid)
    and the cell-source heat-capacity flows."""
    nx, ny, nb = stack.k.shape
    dtype = stack.k.dtype
    H = layer.height
    dz = jnp.concatenate([grid.dz, jnp.stack([H, H])])
    dx = grid.dx[:, None, None]
    dy = grid.dy[None, :, None]
    dzb = dz[None, None, :]
    kx = jnp.concatenate([stack.k, layer.k_sx[..., None], layer.k_fx[..., None]], axis=2)
    ky = jnp.concatenate([stack.k, layer.k_sy[..., None], layer.k_fy[..., None]], axis=2)
    zx = jnp.zeros((1, ny, nb + 2), dtype)
    zy = jnp.zeros((nx, 1, nb + 2), dtype)
    gx = jnp.concatenate([zx, _harmonic_links(kx, dx, (dy * dzb), 0), zx], axis=0)
    gy = jnp.concatenate([zy, _harmonic_links(ky, dy, (dx * dzb), 1), zy], axis=1)
    area = grid.dx[:, None] * grid.dy[None, :]
    gz_stack = _harmonic_links(stack.k, grid.dz[None, None, :], area[..., None], 2)
    # base-top half cell, fin root and floor meet at the base surface node;
    # eliminating that node (star-mesh transform) gives three exact links
    g_half = 2.0 * stack.k[..., -1] / grid.dz[-1] * area  # W/K
    g_r = layer.g_root * area
    g_fl = layer.g_floor * area
    total = g_half + g_r + g_fl
    g_root = g_half * g_r / total
    g_floor = g_half * g_fl / total
    g_sf = layer.g_fin * area + g_r * g_fl / total
    zz = jnp.zeros((nx, ny, 1), dtype)
    gz = jnp.concatenate([zz, gz_stack, g_root[..., None], g_sf[..., None], zz], axis=2)
    cond = Conductances(gx, gy, gz, jnp.zeros((nx, ny, nb + 2), dtype))
    fx = jnp.zeros((nx + 1, ny, nb + 2), dtype).at[..., nb + 1].set(rho_cp * flow.qx)
    fy = jnp.zeros((nx, ny + 1, nb + 2), dtype).at[..., nb + 1].set(rho_cp * flow.qy)
    fz = jnp.zeros((nx, ny, nb + 3), dtype)
    return advdiff.AdvectionDiffusion(cond, fx, fy, fz), g_floor


def _with_c(op: advdiff.AdvectionDiffusion, c_extra) -> advdiff.AdvectionDiffusion:
    d = op.diffusion
    return advdiff.AdvectionDiffusion(Conductances(d.gx, d.gy, d.gz, d.c + c_extra), op.fx, op.fy, op.fz)


def _skip_apply(g_floor, x, nb):
    """Matrix-vector product of the base-top <-> fluid link."""
    d = g_floor * (x[..., nb - 1] - x[..., nb + 1])
    return jnp.zeros_like(x).at[..., nb - 1].add(d).at[..., nb + 1].add(-d)


def _skip_diag(g_floor, shape, nb):
    return jnp.zeros(shape, g_floor.dtype).at[..., nb - 1].set(g_floor).at[..., nb + 1].set(g_floor)


def _krylov_solver(op, g_floor, config: advdiff.KrylovConfig, nb, adjoint: bool = False):
    """``b -> (x, info)``: BiCGSTAB on op + skip link, preconditioned by the
    multigrid of op (+ skip diagonal), whose hierarchy is built once here.
    For the ``adjoint`` solve (see :func:`_linear_solver`): with lines along
    x or y, a second hierarchy with z-column lines follows, each preconditioning
    being a V-cycle with ``config``'s lines, then one with z columns on what the
    first left of the residual; and a solve that breaks down is restarted once."""
    op = lax.stop_gradient(op)
    g_floor = lax.stop_gradient(g_floor)
    pre = _with_c(op, _skip_diag(g_floor, op.shape, nb))
    hier = advdiff.multigrid_setup(pre, config)

    def matvec(v):
        return advdiff.apply(op, v) + _skip_apply(g_floor, v, nb)

    if adjoint and config.line_axis != 2:
        config_z = replace(config, line_axis=2)
        hier_z = advdiff.multigrid_setup(pre, config_z)

        def precond(r):
            z = advdiff.v_cycle(hier, config, r)
            return z + advdiff.v_cycle(hier_z, config_z, r - matvec(z))

    else:

        def precond(r):
            return advdiff.v_cycle(hier, config, r)

    def solve(b):
        tol = config.tolerance(b.dtype)
        if not adjoint:
            return krylov.bicgstab(matvec, b, precond, rtol=tol, max_iterations=config.max_iterations)

        # BiCGSTAB's shadow residual is its first one: for the gradient of a maximum that is a few cells, and
        # a residual that vanishes on them stops the loop (rho = 0: on the 12 x 12 benchmark plate after 2
        # iterations, depending on round-off). Once more from where it stopped, with the residual there as
        # the shadow: a solve that converged does not iterate again. The two passes are one loop over one
        # traced solve (the first from zero: b - A 0 = b exactly); as two solves, the gradient's program took
        # about 3 s longer to trace and compile (26 against 23 s on the 128 x 128 plate in float64).
        def attempt(_, carry):
            x, iterations, _ = carry
            x, info = krylov.bicgstab(matvec, b, precond, x0=x, rtol=tol, max_iterations=config.max_iterations)
            return x, iterations + info.iterations, info

        start = SolveInfo(
            converged=jnp.zeros((), bool),
            iterations=jnp.zeros((), jnp.int32),
            residual=jnp.zeros((), b.dtype),
            history=jnp.zeros((config.max_iterations + 1,), b.dtype),
        )
        x, iterations, info = lax.fori_loop(0, 2, attempt, (jnp.zeros_like(b), jnp.zeros((), jnp.int32), start))
        return x, replace(info, iterations=iterations)

    return solve


def _linear_solver(op, g_floor, config: advdiff.KrylovConfig, nb):
    """``b -> (x, info)`` for ``(op + skip link) x = b``, differentiable by
    ``lax.custom_linear_solve`` (one adjoint solve). The forward multigrid
    hierarchy is built once, so a time loop reuses it at every step; the
    adjoint's is built inside the transpose, so a solve that is not
    differentiated never builds it (built outside, it was an operand of every
    forward solve: 10-20 % slower on the 128 x 128 plate)."""
    forward_solve = _krylov_solver(op, g_floor, config, nb)
    # The adjoint (reversed-flow) system is preconditioned by a V-cycle with the forward's lines followed by
    # one with z columns. Either alone fails somewhere: with x lines BiCGSTAB diverged on coarse plates (an
    # 8 x 8 centre-fed plate; on the benchmark plate 300 iterations without converging at 12 x 12, 111 at
    # 16 x 16); with z columns it took 27-56 iterations at 128-256 in float64 and diverged at 128 x 128 in
    # float32 (a NaN gradient). Both in turn: 3-8 iterations from 8 x 8 to 256 x 256 in float64, 2-4 in
    # float32 (benchmarks/porous.py's plate, 303 K inlet, 1.5 L/min).
    # An adjoint solve that still fails returns NaN, so a gradient is never a diverged number.
    transposed = _with_c(advdiff.negated(op), advdiff.net_outflow(op))

    def matvec(v):
        return advdiff.apply(op, v) + _skip_apply(g_floor, v, nb)

    def forward(_, rhs):
        return forward_solve(rhs)

    def transpose(_, rhs):
        x, info = _krylov_solver(transposed, g_floor, config, nb, adjoint=True)(rhs)
        return jnp.where(info.converged, x, jnp.nan), info

    def solve(b):
        return lax.custom_linear_solve(matvec, b, solve=forward, transpose_solve=transpose, has_aux=True)

    return solve


def _heat_inflow(flow: Flow, rho_cp, shape):
    """Heat-capacity flow entering each fluid cell from outside (from above
    and through side inlets), W/K, ``(nx, ny)``."""
    inflow = rho_cp * flow.q_cells
    for _name, axis, side in _SIDES:
        q = flow.qx if axis == 0 else flow.qy
        face = _take_side(q, axis, side)
        into = jnp.maximum(face if side == 0 else -face, 0.0)
        inflow = inflow + _put_side(into * rho_cp, shape, axis, side)
    return inflow


def _heat_out(flow: Flow, rho_cp, inflow, Tf, t_in):
    """Net enthalpy carried out by the fluid (outflow at the outlet cells'
    temperature minus inflow at ``t_in``), W."""
    out = -jnp.sum(inflow) * t_in
    for _name, axis, side in _SIDES:
        q = flow.qx if axis == 0 else flow.qy
        face = _take_side(q, axis, side)
        leaving = jnp.maximum(-face if side == 0 else face, 0.0) * rho_cp
        out = out + jnp.sum(leaving * _take_side(Tf, axis, side))
    return out


def solve_energy(
    grid: Grid,
    layer: FinLayer,
    stack: Stack,
    flow: Flow,
    rho_cp,
    t_in,
    config: EnergyConfig | None = None,
) -> Thermal:
    """Steady temperatures of the stack, the fins and the fluid.

    Args:
        grid: grid of the solid stack, shape ``(nx, ny, nb)`` (dz = layer
            thicknesses; the fin layer is added on top with ``layer.height``).
        layer: fin-layer closures.
        stack: stack conductivities and bottom heat flux.
        flow: a converged :class:`Flow` on the same in-plane grid.
        rho_cp: volumetric heat capacity of the coolant, J/m^3/K.
        t_in: inlet temperature.
        config: static settings.

    Boundary conditions: heat flux ``stack.q`` on the bottom, all other solid
    faces adiabatic; fluid enters at ``t_in`` (from above and through side
    inlets) and leaves by advection only. Differentiable (implicit).
    """
    config = config or EnergyConfig()
    nb = stack.k.shape[2]
    dtype = stack.k.dtype
    rho_cp = jnp.asarray(rho_cp, dtype)
    t_in = jnp.asarray(t_in, dtype)
    op, g_floor = _energy_operator(grid, layer, stack, flow, rho_cp)
    area = grid.dx[:, None] * grid.dy[None, :]
    inflow = _heat_inflow(flow, rho_cp, area.shape)
    b = jnp.zeros(op.shape, dtype).at[..., 0].set(stack.q * area).at[..., nb + 1].add(inflow * t_in)
    T, info = _linear_solver(op, g_floor, config.krylov, nb)(b)
    Tf = T[..., nb + 1]
    heat_in = jnp.sum(stack.q * area)
    return Thermal(T[..., :nb], T[..., nb], Tf, heat_in, _heat_out(flow, rho_cp, inflow, Tf, t_in), info)


def junction_temperature(grid: Grid, stack: Stack, thermal: Thermal):
    """Temperature of the bottom face (the junction side), ``(nx, ny)``: the
    bottom cell's value plus the prescribed flux across its lower half."""
    return thermal.T_stack[..., 0] + stack.q * 0.5 * grid.dz[0] / stack.k[..., 0]


def thermal_resistance(stack: Stack, grid: Grid, thermal: Thermal, t_in):
    """``(R_max, R_mean)`` in K/W: hottest and heat-flux-weighted mean
    bottom-face temperature (:func:`junction_temperature`) above the inlet
    temperature, per watt of input."""
    area = grid.dx[:, None] * grid.dy[None, :]
    power = jnp.sum(stack.q * area)
    tb = junction_temperature(grid, stack, thermal)
    r_max = (jnp.max(tb) - t_in) / power
    r_mean = (jnp.sum(stack.q * area * tb) / power - t_in) / power
    return r_max, r_mean


# --------------------------------------------------------------------------- energy in time

TIME_SCHEMES = ("euler", "bdf2", "cn")


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class HeatCapacity:
    """Volumetric heat capacities of the plate's cells, J/m^3/K (>= 0).

    Attributes:
        stack: ``rho c`` of each stack cell, ``(nx, ny, nb)``.
        fin: heat capacity of the fin solid per unit volume of the fin
            layer, ``(nx, ny)``: ``(1 - phi) rho_fin c_fin`` with ``phi`` the
            porosity (0 in a plenum, whose fin cell has no solid).
        fluid: heat capacity of the coolant per unit volume of the fin
            layer, ``(nx, ny)``: ``phi rho c_p`` (``rho c_p`` in a plenum,
            whose porosity is 1).

    A zero entry makes that cell algebraic: it follows its neighbours at once.
    """

    stack: jax.Array
    fin: jax.Array
    fluid: jax.Array


@dataclass(frozen=True)
class TimeConfig:
    """Static settings of :func:`integrate_energy`.

    Attributes:
        scheme: ``"euler"`` (backward Euler, first order, L-stable),
            ``"bdf2"`` (second order, L-stable; the first step is backward
            Euler) or ``"cn"`` (Crank-Nicolson, second order, A-stable only:
            a sudden step rings at the finest scales).
        krylov: each step's BiCGSTAB and multigrid settings.
    """

    scheme: str = "bdf2"
    krylov: advdiff.KrylovConfig = advdiff.KrylovConfig(line_axis=0)

    def __post_init__(self):
        if self.scheme not in TIME_SCHEMES:
            raise ValueError(f"unknown time scheme {self.scheme!r}; one of {TIME_SCHEMES}")


def cell_heat_capacities(grid: Grid, layer: FinLayer, capacity: HeatCapacity) -> jax.Array:
    """Heat capacity of every unknown, J/K, on the stacked grid
    ``(nx, ny, nb + 2)`` (stack layers, fin, fluid)."""
    area = grid.dx[:, None] * grid.dy[None, :]
    stack = capacity.stack * area[..., None] * grid.dz[None, None, :]
    H = layer.height
    return jnp.concatenate(
        [stack, (capacity.fin * area * H)[..., None], (capacity.fluid * area * H)[..., None]], axis=2
    )


def stored_heat(grid: Grid, layer: FinLayer, capacity: HeatCapacity, thermal: Thermal) -> jax.Array:
    """Heat stored in the plate relative to 0 in the temperature unit,
    ``sum(C T)`` over the stack, fin and fluid cells, J."""
    return jnp.sum(cell_heat_capacities(grid, layer, capacity) * _stacked(thermal))


def _stacked(thermal: Thermal) -> jax.Array:
    """The temperatures on the stacked grid ``(nx, ny, nb + 2)``: stack layers, fin, fluid."""
    return jnp.concatenate([thermal.T_stack, thermal.T_fin[..., None], thermal.T_fluid[..., None]], axis=2)


def _scaled_operator(op: advdiff.AdvectionDiffusion, theta) -> advdiff.AdvectionDiffusion:
    d = op.diffusion
    cond = Conductances(d.gx * theta, d.gy * theta, d.gz * theta, d.c * theta)
    return advdiff.AdvectionDiffusion(cond, op.fx * theta, op.fy * theta, op.fz * theta)


def _default_observation(grid: Grid, stack: Stack):
    def observe(thermal: Thermal, scale):
        tj = thermal.T_stack[..., 0] + scale * stack.q * 0.5 * grid.dz[0] / stack.k[..., 0]
        return {"junction_max": jnp.max(tj), "heat_in": thermal.heat_in, "heat_out": thermal.heat_out}

    return observe


def integrate_energy(
    grid: Grid,
    layer: FinLayer,
    stack: Stack,
    flow: Flow,
    rho_cp,
    capacity: HeatCapacity,
    start,
    dt,
    source_scale,
    t_in,
    config: TimeConfig = TimeConfig(),
    observe=None,
):
    """Step the plate's stack, fin and fluid temperatures through a power trace.

    Solves ``C dT/dt = -A T + s(t) b_q + t_in(t) b_in`` with ``A`` the
    operator of :func:`solve_energy` (conduction, the fin/fluid and floor
    links, upwind advection by ``flow``, held fixed), ``C`` the cells' heat
    capacities (:func:`cell_heat_capacities`), ``b_q`` the bottom heat flux
    ``stack.q`` and ``b_in`` the heat-capacity flow entering with the coolant.
    Implicit steps: the time step is set by accuracy, not by a Courant or
    diffusion limit. Each step is one BiCGSTAB solve of
    ``(a C/dt + theta A) T_new = ...``, whose multigrid hierarchy is built
    once per trace; the steps run in
    ``lax.scan``: pure, ``jit``- and ``vmap``-able (over traces, flows,
    closures, capacities), and differentiable in reverse mode (each solve has
    an implicit adjoint, as in :func:`solve_energy`).

    Args:
        grid, layer, stack, flow, rho_cp: as for :func:`solve_energy`
            (``stack.q`` is the bottom heat flux at scale 1).
        capacity: volumetric heat capacities (:class:`HeatCapacity`).
        start: the initial state, a :class:`Thermal` (e.g. the steady
            solution at the first trace sample) or one temperature for every cell.
        dt: time step, s.
        source_scale: the heat flux's multiplier at each time level
            ``t_n = n dt``, shape ``(n_steps + 1,)`` (entry 0: the start).
        t_in: the coolant inlet temperature, a scalar or one per time level
            (shape ``(n_steps + 1,)``).
        config: the scheme and the solver's settings (static).
        observe: ``(thermal, scale) -> pytree`` recorded at every level
            (static); ``thermal`` is a :class:`Thermal` at that level (its
            ``info`` is None: the steps' diagnostics are in the returned
            ``info``). Default: ``{"junction_max", "heat_in", "heat_out"}``,
            in the temperature unit and W.

    Returns:
        ``(thermal_end, observed, info)``: the :class:`Thermal` at the last
        level, the observations stacked along a leading axis of length
        ``n_steps + 1`` (level 0 is the start), and a :class:`SolveInfo`
        whose ``converged`` is true when every step converged, with the
        largest ``iterations`` and ``residual`` and each step's residual in
        ``history``.

    Energy: with ``E = stored_heat(...)`` backward Euler satisfies
    ``E_{n+1} - E_n = dt (heat_in - heat_out)(t_{n+1})``, Crank-Nicolson the
    same with the average of both ends, BDF2 ``1.5 E_{n+1} - 2 E_n +
    0.5 E_{n-1} = dt (heat_in - heat_out)(t_{n+1})``, each to the solver's
    tolerance; after long times at a constant trace the fields equal
    :func:`solve_energy`'s.
    """
    nb = stack.k.shape[2]
    dtype = stack.k.dtype
    dt = jnp.asarray(dt, dtype)
    rho_cp = jnp.asarray(rho_cp, dtype)
    scale = jnp.asarray(source_scale, dtype)
    tin = jnp.broadcast_to(jnp.asarray(t_in, dtype), scale.shape)
    observe = observe or _default_observation(grid, stack)
    op, g_floor = _energy_operator(grid, layer, stack, flow, rho_cp)
    area = grid.dx[:, None] * grid.dy[None, :]
    inflow = _heat_inflow(flow, rho_cp, area.shape)
    b_q = jnp.zeros(op.shape, dtype).at[..., 0].set(stack.q * area)
    b_in = jnp.zeros(op.shape, dtype).at[..., nb + 1].set(inflow)
    cap = cell_heat_capacities(grid, layer, capacity)
    power = jnp.sum(stack.q * area)
    kcfg = config.krylov

    def b(s, t):
        return s * b_q + t * b_in

    def full_apply(v):
        return advdiff.apply(op, v) + _skip_apply(g_floor, v, nb)

    def state(T, s, t, info=None):
        Tf = T[..., nb + 1]
        th = Thermal(T[..., :nb], T[..., nb], Tf, s * power, _heat_out(flow, rho_cp, inflow, Tf, t), info)
        return th, observe(th, s)

    if isinstance(start, Thermal):
        T0 = _stacked(start).astype(dtype)
    else:
        T0 = jnp.full(op.shape, start, dtype)

    def solver(a, theta):
        return _linear_solver(_with_c(_scaled_operator(op, theta), a * cap / dt), g_floor * theta, kcfg, nb)

    euler = solver(1.0, 1.0)
    if config.scheme == "bdf2":
        bdf2 = solver(1.5, 1.0)
    elif config.scheme == "cn":
        cn = solver(1.0, 0.5)

    def step(carry, level):
        T, T_prev = carry
        s0, s1, t0, t1 = level
        if config.scheme == "euler":
            T_new, info = euler(cap / dt * T + b(s1, t1))
        elif config.scheme == "cn":
            T_new, info = cn(cap / dt * T - 0.5 * full_apply(T) + 0.5 * (b(s0, t0) + b(s1, t1)))
        else:
            T_new, info = bdf2(cap / dt * (2.0 * T - 0.5 * T_prev) + b(s1, t1))
        _, obs = state(T_new, s1, t1)
        return (T_new, T), (obs, info.converged, info.iterations, info.residual)

    head = [state(T0, scale[0], tin[0])[1]]
    levels = (scale[:-1], scale[1:], tin[:-1], tin[1:])
    T_start, T_before, first = T0, T0, None
    if config.scheme == "bdf2":  # BDF2 needs two levels: the first step is backward Euler
        T1, info1 = euler(cap / dt * T0 + b(scale[1], tin[1]))
        head.append(state(T1, scale[1], tin[1])[1])
        first = info1
        T_start, T_before = T1, T0
        levels = tuple(x[1:] for x in levels)
    (T_end, _), (obs, c, i, r) = lax.scan(step, (T_start, T_before), levels)
    if first is not None:
        c = jnp.concatenate([first.converged[None], c])
        i = jnp.concatenate([first.iterations[None], i])
        r = jnp.concatenate([first.residual[None], r])
    info = SolveInfo(converged=jnp.all(c), iterations=jnp.max(i), residual=jnp.max(r), history=r)
    heads = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *head)
    observed = jax.tree_util.tree_map(lambda h, o: jnp.concatenate([h, o], axis=0), heads, obs)
    thermal_end, _ = state(T_end, scale[-1], tin[-1], info)
    return thermal_end, observed, info
