"""Edge laws of the hydraulic network: pressure loss as a function of flow.

Private module of :mod:`kernels.network`. Every law is a pure elementwise
function of the edge's volumetric flow ``Q`` (m^3/s, positive from the edge's
``from`` node to its ``to`` node) and returns the pressure loss along the edge
in Pa (positive when it opposes positive flow; a pump returns a negative loss,
i.e. a gain). Laws are odd in ``Q`` so that reversed flow reverses the loss.

Each law is evaluated only on the edges of its kind (static index sets), so
the parameters of other edges never enter it.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

# ---------------------------------------------------------------- edge kinds
PIPE = 0
PIPE_CHURCHILL = 1
FLOW_COEFFICIENT = 2
POWER_LAW = 3
TABLE = 4
PUMP = 5
VALVE = 6
TEE_DIVIDING_BRANCH = 7
TEE_DIVIDING_RUN = 8
TEE_COMBINING_BRANCH = 9
TEE_COMBINING_RUN = 10
LOGLOG_TABLE = 11
N_KINDS = 12

TEE_KINDS = (TEE_DIVIDING_BRANCH, TEE_DIVIDING_RUN, TEE_COMBINING_BRANCH, TEE_COMBINING_RUN)
PIPE_LIKE_KINDS = (PIPE, PIPE_CHURCHILL) + TEE_KINDS

#: Pa per bar, and the density of the water that defines Kv (kg/m^3).
_BAR = 1.0e5
_RHO_KV = 1000.0
#: Kv = KV_PER_CV * Cv (Cv in US gal/min at 1 psi, Kv in m^3/h at 1 bar).
KV_PER_CV = 0.865
#: below this fraction of the combined flow a tee coefficient is ramped to 0
_TEE_RAMP = 1.0e-3
_LN10 = math.log(10.0)


# ------------------------------------------------------------- friction factor
def _colebrook_newton(re, rel_rough, iterations):
    a = rel_rough / 3.7
    b = 2.51 / re
    f0 = 0.25 / jnp.log10(a + 5.74 * jnp.exp(-0.9 * jnp.log(re))) ** 2
    x = 1.0 / jnp.sqrt(f0)
    for _ in range(iterations):
        arg = a + b * x
        res = x + 2.0 * jnp.log10(arg)
        dres = 1.0 + 2.0 * b / (arg * _LN10)
        x = x - res / dres
    return x


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _colebrook_x(re, rel_rough, iterations):
    """x = 1/sqrt(f) of the Colebrook equation G(x) = x + 2 log10(a + b x) = 0,
    a = (eps/D)/3.7, b = 2.51/Re; its derivative is the implicit one of the
    converged equation, not that of the Newton iterations."""
    return _colebrook_newton(re, rel_rough, iterations)


@_colebrook_x.defjvp
def _colebrook_x_jvp(iterations, primals, tangents):
    re, rr = primals
    dre, drr = tangents
    x = _colebrook_newton(re, rr, iterations)
    a, b = rr / 3.7, 2.51 / re
    k = 2.0 / ((a + b * x) * _LN10)
    g_x = 1.0 + k * b
    da = drr / 3.7
    db = -b / re * dre
    return x, -(k * da + k * x * db) / g_x


def _colebrook(re, rel_rough, iterations=3):
    """Colebrook (1939) Darcy friction factor by Newton on x = 1/sqrt(f).

    Starts from the Swamee-Jain (1976) explicit approximation (within ~1 %),
    so three Newton steps reach float64 round-off (measured 8e-16 over
    Re 2e3..1e8, eps/D 0..0.05). ``re`` must be >= ~2000. Derivatives are
    those of the exact solution (implicit function theorem).
    """
    x = _colebrook_x(re, rel_rough, iterations)
    return 1.0 / (x * x)


def _f_re(re, rel_rough, turbulent):
    """Product f*Re of the full-range Churchill (1977) form.

    f = 8 [(8/Re)^12 + (A + B)^-1.5]^(1/12), B = (37530/Re)^16, evaluated as
    f*Re = 64 (1 + T)^(1/12), log T = 12 log(Re/8) - 1.5 log(A + B), in logs so
    that neither float32 nor float64 overflows at any Re > 0. In the laminar
    limit T -> 0 and f*Re = 64 to round-off (T < 1e-12 for Re < 1000).

    turbulent = "churchill": Churchill's A = [2.457 ln(1/((7/Re)^0.9 +
    0.27 eps/D))]^16 (his explicit fit of the turbulent branch).
    turbulent = "colebrook": A = (8/f_C)^8 with f_C the Colebrook friction
    factor, i.e. Churchill's laminar-transition-turbulent interpolation with
    the Colebrook equation as its turbulent asymptote.
    """
    re = jnp.maximum(re, jnp.asarray(1.0e-3, re.dtype))
    log_re = jnp.log(re)
    log_b = 16.0 * (math.log(37530.0) - log_re)
    if turbulent == "churchill":
        inner = jnp.exp(0.9 * (math.log(7.0) - log_re)) + 0.27 * rel_rough
        log_a = 16.0 * jnp.log(jnp.abs(2.457 * jnp.log(inner)) + jnp.finfo(re.dtype).tiny)
    elif turbulent == "colebrook":
        re_c = jnp.maximum(re, jnp.asarray(2000.0, re.dtype))
        f_c = _colebrook(re_c, rel_rough)
        log_a = 8.0 * (math.log(8.0) - jnp.log(f_c))
    else:  # pragma: no cover - static option checked by callers
        raise ValueError(f"unknown turbulent friction model {turbulent!r}")
    log_t = 12.0 * (log_re - math.log(8.0)) - 1.5 * jnp.logaddexp(log_a, log_b)
    return 64.0 * jnp.exp(jnp.logaddexp(log_t, 0.0) / 12.0)


def friction_factor(reynolds, relative_roughness, model="colebrook"):
    """Darcy friction factor over laminar, transitional and turbulent flow.

    Args:
        reynolds: Reynolds number rho*u*D/mu (> 0), any shape.
        relative_roughness: eps/D (>= 0), broadcastable to ``reynolds``.
        model: ``"colebrook"`` (default): Churchill's (1977) full-range
            interpolation with the Colebrook equation as turbulent asymptote:
            64/Re exactly in laminar flow, Colebrook to < 1e-7 relative for
            Re >= 1e4. ``"churchill"``: Churchill's (1977) explicit formula as
            published; its turbulent branch deviates from Colebrook by up to
            0.65 % (smooth) and 2.1 % (eps/D = 0.01) for Re in 1e4..1e6.

    Returns:
        Darcy friction factor f (dimensionless), same shape as ``reynolds``.
    """
    re = jnp.asarray(reynolds)
    rr = jnp.asarray(relative_roughness, re.dtype)
    return _f_re(re, rr, model) / jnp.maximum(re, jnp.asarray(1.0e-3, re.dtype))


def friction_factor_colebrook(reynolds, relative_roughness, iterations=3):
    """Turbulent Darcy friction factor from the Colebrook equation,
    1/sqrt(f) = -2 log10(eps/(3.7 D) + 2.51/(Re sqrt(f))), solved by
    ``iterations`` Newton steps from the Swamee-Jain estimate. Valid for
    Re >= 2000 (the equation describes turbulent flow only)."""
    re = jnp.asarray(reynolds)
    return _colebrook(re, jnp.asarray(relative_roughness, re.dtype), iterations)


def kv_from_cv(cv):
    """Flow coefficient Kv (m^3/h of water at 1 bar) from Cv (US gal/min of
    water at 1 psi): Kv = 0.865 Cv."""
    return KV_PER_CV * cv


# -------------------------------------------------------------- tee coefficients
def tee_loss_coefficient(kind, branch_ratio, area_ratio):
    """Loss coefficient of a sharp 90-degree tee, referred to the velocity
    head rho*u_c^2/2 of the combined leg (Crane Co., Technical Paper 410,
    *Flow of Fluids Through Valves, Fittings and Pipe*, 2009, with the
    publisher's errata; the same equations as Bell's ``fluids`` package,
    functions ``K_{branch,run}_{diverging,converging}_Crane`` at 90 degrees).

    Args:
        kind: one of the four tee edge kinds (static Python int).
        branch_ratio: x = Q_branch / Q_combined in [0, 1] (for the run edges
            too: their coefficient depends on the branch's share).
        area_ratio: beta^2 = A_branch / A_combined (> 0).

    Dividing flow (combined leg -> run + branch):
        branch: K = G [1 + H (x/beta^2)^2], H = 0.3 if beta > 2/3 else 1,
                G = 1 if beta^2 <= 2/3 else 1 + 0.3 x^2;
        run:    K = M x^2, M = 0.4 if beta^2 <= 0.4, else 2(2x - 1) for
                x <= 0.5 and 0.3(2x - 1) above.
    Combining flow (run + branch -> combined leg):
        branch: K = C [1 + (x/beta^2)^2 - 2 (1 - x)^2], C = 1 if
                beta^2 <= 0.35, else 0.9 (1 - x) for x <= 0.4 and 0.55 above;
        run:    K = 1.55 x - x^2.
    """
    x = branch_ratio
    b2 = area_ratio
    one = jnp.ones_like(x)
    if kind == TEE_DIVIDING_BRANCH:
        h = jnp.where(b2 > 4.0 / 9.0, 0.3 * one, one)
        g = jnp.where(b2 <= 2.0 / 3.0, one, 1.0 + 0.3 * x * x)
        return g * (1.0 + h * (x / b2) ** 2)
    if kind == TEE_DIVIDING_RUN:
        m = jnp.where(b2 <= 0.4, 0.4 * one, jnp.where(x <= 0.5, 2.0 * (2.0 * x - 1.0), 0.3 * (2.0 * x - 1.0)))
        return m * x * x
    if kind == TEE_COMBINING_BRANCH:
        c = jnp.where(b2 <= 0.35, one, jnp.where(x <= 0.4, 0.9 * (1.0 - x), 0.55 * one))
        return c * (1.0 + (x / b2) ** 2 - 2.0 * (1.0 - x) ** 2)
    if kind == TEE_COMBINING_RUN:
        return 1.55 * x - x * x
    raise ValueError(f"kind {kind} is not a tee kind")


# ------------------------------------------------------------------- PCHIP
def _pchip_slopes(xk, yk):
    """Fritsch-Carlson monotone slopes at the knots, per row (as SciPy's
    PchipInterpolator): shape (n, m) -> (n, m)."""
    h = xk[:, 1:] - xk[:, :-1]
    delta = (yk[:, 1:] - yk[:, :-1]) / h
    m = xk.shape[1]
    if m == 2:
        return jnp.concatenate([delta, delta], axis=1)
    h0, h1 = h[:, :-1], h[:, 1:]
    d0, d1 = delta[:, :-1], delta[:, 1:]
    w1 = 2.0 * h1 + h0
    w2 = h1 + 2.0 * h0
    same = d0 * d1 > 0.0
    d0s = jnp.where(same, d0, 1.0)
    d1s = jnp.where(same, d1, 1.0)
    interior = jnp.where(same, (w1 + w2) / (w1 / d0s + w2 / d1s), 0.0)

    def edge(ha, hb, ma, mb):
        d = ((2.0 * ha + hb) * ma - ha * mb) / (ha + hb)
        d = jnp.where(jnp.sign(d) != jnp.sign(ma), 0.0, d)
        return jnp.where((jnp.sign(ma) != jnp.sign(mb)) & (jnp.abs(d) > 3.0 * jnp.abs(ma)), 3.0 * ma, d)

    first = edge(h[:, 0], h[:, 1], delta[:, 0], delta[:, 1])
    last = edge(h[:, -1], h[:, -2], delta[:, -1], delta[:, -2])
    return jnp.concatenate([first[:, None], interior, last[:, None]], axis=1)


def pchip_eval(x, xk, yk):
    """Monotone piecewise-cubic Hermite interpolation, one table per row.

    Args:
        x: evaluation points, shape (n,), inside or above the table range.
        xk: strictly increasing knots, shape (n, m); yk: values, shape (n, m).

    Beyond the last knot the curve continues along its end tangent (linear
    extrapolation). Below the first knot it is extrapolated with the first
    cubic piece (callers evaluate at x >= xk[:, 0]).
    """
    m = xk.shape[1]
    d = _pchip_slopes(xk, yk)
    k = jnp.sum((x[:, None] > xk[:, 1:-1]).astype(jnp.int32), axis=1) if m > 2 else jnp.zeros(x.shape, jnp.int32)
    idx = k[:, None]
    x0 = jnp.take_along_axis(xk, idx, axis=1)[:, 0]
    x1 = jnp.take_along_axis(xk, idx + 1, axis=1)[:, 0]
    y0 = jnp.take_along_axis(yk, idx, axis=1)[:, 0]
    y1 = jnp.take_along_axis(yk, idx + 1, axis=1)[:, 0]
    s0 = jnp.take_along_axis(d, idx, axis=1)[:, 0]
    s1 = jnp.take_along_axis(d, idx + 1, axis=1)[:, 0]
    hk = x1 - x0
    t = (x - x0) / hk
    t2, t3 = t * t, t * t * t
    cubic = (
        (2.0 * t3 - 3.0 * t2 + 1.0) * y0
        + (t3 - 2.0 * t2 + t) * hk * s0
        + (-2.0 * t3 + 3.0 * t2) * y1
        + (t3 - t2) * hk * s1
    )
    linear = yk[:, -1] + d[:, -1] * (x - xk[:, -1])
    return jnp.where(x > xk[:, -1], linear, cubic)


# ---------------------------------------------------------------- edge losses
def _signed_power(q, n):
    """sign(q) |q|^n with a finite derivative (zero) at q = 0 for n > 1."""
    aq = jnp.abs(q)
    pos = aq > 0.0
    lq = jnp.log(jnp.where(pos, aq, 1.0))
    return jnp.sign(q) * jnp.where(pos, jnp.exp(n * lq), 0.0)


def _loglog_segment(x, xk, yk):
    """(x0, y0, n) of the segment of a log-log table that serves ``x``: the
    segment starting at the largest knot <= x (the first below the table, the
    last above it), its start and its exponent n = dlog y / dlog x."""
    m = xk.shape[-1]
    if m < 2:
        raise ValueError(f"a log-log table needs at least 2 knots, got {m}")
    shape = jnp.broadcast_shapes(jnp.shape(x), xk.shape[:-1], yk.shape[:-1])
    x = jnp.broadcast_to(x, shape)
    xk = jnp.broadcast_to(xk, (*shape, m))
    yk = jnp.broadcast_to(yk, (*shape, m))
    k = jnp.sum((jnp.abs(x)[..., None] >= xk[..., 1:-1]).astype(jnp.int32), axis=-1)[..., None]
    x0, x1 = jnp.take_along_axis(xk, k, -1)[..., 0], jnp.take_along_axis(xk, k + 1, -1)[..., 0]
    y0, y1 = jnp.take_along_axis(yk, k, -1)[..., 0], jnp.take_along_axis(yk, k + 1, -1)[..., 0]
    return x, x0, y0, jnp.log(y1 / y0) / jnp.log(x1 / x0)


def loglog_interp(x, xk, yk):
    """Piecewise power law through the knots (linear interpolation of log y
    over log x), odd in ``x``: y = sign(x) y_k (|x| / x_k)^n_k on the segment
    [x_k, x_k+1] that holds |x|, continued along the first segment below the
    table and along the last above it. Exact at the knots and for any power
    law; monotone when the values are.

    Args:
        x: points, any shape broadcastable with ``xk.shape[:-1]``.
        xk: knots, strictly increasing and positive, shape (..., m), m >= 2.
        yk: positive values at the knots, shape (..., m).

    Differentiable in x, xk and yk (at x = 0 the value is 0 with a zero
    derivative). Callers check that x lies inside the table: the extension
    beyond it is a continuation, not data.
    """
    x, x0, y0, n = _loglog_segment(x, jnp.asarray(xk), jnp.asarray(yk))
    return y0 * _signed_power(x / x0, n)


def _pipe_loss(flow, rho, mu, length, diameter, roughness, k_minor, turbulent):
    """Darcy-Weisbach with full-range friction plus minor losses:
    dp = f*Re * 2 mu L Q / (pi D^4) + K * 8 rho Q|Q| / (pi^2 D^4)."""
    d4 = diameter**4
    re = 4.0 * rho * jnp.abs(flow) / (math.pi * diameter * mu)
    fre = _f_re(re, roughness / diameter, turbulent)
    friction = fre * 2.0 * mu * length * flow / (math.pi * d4)
    minor = k_minor * 8.0 * rho * flow * jnp.abs(flow) / (math.pi**2 * d4)
    return friction + minor


def edge_losses(kinds, p, rho, mu, flow, flow_ref):
    """Pressure loss of every edge (Pa), shape (n_edges,).

    Each law is evaluated only on the edges of its kind (static index sets
    gathered from ``kinds``), so a network pays only for the laws it uses.

    Args:
        kinds: static tuple of the edge kinds in the network (one per edge).
        p: EdgeParams pytree.
        rho, mu: fluid density (kg/m^3) and dynamic viscosity (Pa s), scalars.
        flow: edge flows (m^3/s), shape (n_edges,).
        flow_ref: for tee edges, the flow of their partner leg (the branch
            for a run edge, the run for a branch edge) (m^3/s), shape
            (n_edges,); ignored elsewhere. The combined flow is their sum.
    """
    kind = np.asarray(kinds)
    out = jnp.zeros_like(flow)

    def group(ks):
        idx = np.flatnonzero(np.isin(kind, ks))
        return (idx, True) if idx.size else (None, False)

    def take(a, idx):
        return a if idx.size == kind.size else a[idx]

    def put(out, idx, v):
        return v if idx.size == kind.size else out.at[idx].set(v)

    for model, ks in (("colebrook", [PIPE]), ("churchill", [PIPE_CHURCHILL])):
        idx, any_ = group(ks)
        if any_:
            q = take(flow, idx)
            v = _pipe_loss(
                q,
                rho,
                mu,
                take(p.length, idx),
                take(p.diameter, idx),
                take(p.roughness, idx),
                take(p.k_minor, idx),
                model,
            )
            out = put(out, idx, v)
    for k in TEE_KINDS:
        idx, any_ = group([k])
        if not any_:
            continue
        q, qp = take(flow, idx), take(flow_ref, idx)
        diam, b2 = take(p.diameter, idx), take(p.area_ratio, idx)
        v = _pipe_loss(q, rho, mu, take(p.length, idx), diam, take(p.roughness, idx), take(p.k_minor, idx), "colebrook")
        branch = k in (TEE_DIVIDING_BRANCH, TEE_COMBINING_BRANCH)
        q_b = q if branch else qp
        qc = q + qp  # combined leg = run + branch (mass balance of the three-way junction)
        nz = qc != 0.0
        x = jnp.clip(jnp.where(nz, q_b / jnp.where(nz, qc, 1.0), 0.0), 0.0, 1.0)
        own = jnp.where(nz, q / jnp.where(nz, qc, 1.0), 0.0)
        ramp = jnp.clip(own / _TEE_RAMP, -1.0, 1.0)
        d_comb = diam / jnp.sqrt(b2) if branch else diam
        dyn = 8.0 * rho * qc * qc / (math.pi**2 * d_comb**4)
        out = put(out, idx, v + tee_loss_coefficient(k, x, b2) * dyn * ramp)
    idx, any_ = group([FLOW_COEFFICIENT, VALVE])
    if any_:
        q, kv = take(flow, idx), take(p.kv, idx)
        is_v = kind[idx] == VALVE
        if is_v.any():
            opening, rng = take(p.opening, idx), take(p.rangeability, idx)
            eq_pct = jnp.exp((opening - 1.0) * jnp.log(jnp.maximum(rng, 1.0)))
            char = jnp.where(rng > 1.0, eq_pct, opening)
            kv = jnp.where(jnp.asarray(is_v), kv * char, kv)
        coef = (_BAR / _RHO_KV) * 3600.0**2 * rho / (kv * kv)
        out = put(out, idx, coef * q * jnp.abs(q))
    idx, any_ = group([POWER_LAW])
    if any_:
        q = take(flow, idx)
        v = take(p.lin_coef, idx) * q + take(p.pow_coef, idx) * _signed_power(q, take(p.pow_exp, idx))
        out = put(out, idx, v)
    idx, any_ = group([TABLE])
    if any_:
        q = take(flow, idx)
        tq, tdp = take(p.table_flow, idx), take(p.table_dp, idx)
        out = put(out, idx, jnp.sign(q) * pchip_eval(jnp.abs(q), tq, tdp))
    idx, any_ = group([LOGLOG_TABLE])
    if any_:
        q = take(flow, idx)
        tq, tdp = take(p.table_flow, idx), take(p.table_dp, idx)
        q, q0, dp0, n = _loglog_segment(q, tq, tdp)
        # below the table the first segment continues with an exponent of at least 1, so that the loss has a
        # finite slope at zero flow (Newton's iterates pass there; an operating flow there is out of range)
        n = jnp.where(jnp.abs(q) < tq[:, 0], jnp.maximum(n, 1.0), n)
        out = put(out, idx, dp0 * _signed_power(q / q0, n))
    idx, any_ = group([PUMP])
    if any_:
        q, s = take(flow, idx), take(p.pump_speed, idx)
        gain = s * s * take(p.pump_dp0, idx) - s * take(p.pump_r1, idx) * q - take(p.pump_r2, idx) * q * jnp.abs(q)
        out = put(out, idx, -gain)
    return out
