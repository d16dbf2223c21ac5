"""Heat exchangers by the effectiveness-NTU method (Incropera; Shah & Sekulic 2002).

Notation (SI): ``C = m_dot * c_p`` is a capacity rate in W/K, ``C_min``/``C_max``
the smaller/larger of the two streams, ``Cr = C_min / C_max`` in [0, 1],
``NTU = UA / C_min`` with UA in W/K, and the effectiveness
``eps = Q / (C_min * (T_hot_in - T_cold_in))``. Temperatures are in kelvin (any
offset scale works where only differences enter).

Every function is elementwise over arrays of one shape (scalars broadcast),
follows the floating dtype of its inputs, works under ``jit``/``vmap``/``grad``, and
is smooth through the limits Cr -> 0 and Cr -> 1 (no 0/0, also in gradients).

Arrangements (static strings, see :data:`ARRANGEMENTS`):

* ``"counterflow"``: eps = (1 - e^{-N(1-Cr)}) / (1 - Cr e^{-N(1-Cr)});
  eps = N / (1 + N) at Cr = 1. Evaluated as ``N phi / (N phi + e^{-a})`` with
  ``a = N (1 - Cr)`` and ``phi = (1 - e^{-a}) / a``, which is the same expression
  without the removable singularity.
* ``"parallel"``: eps = (1 - e^{-N(1+Cr)}) / (1 + Cr).
* ``"crossflow_unmixed"`` (both streams unmixed): the exact series (as in
  Shah & Sekulic 2002) ``eps = 1/(Cr N) sum_{n>=0} P(X > n) P(Y > n)`` with
  X ~ Poisson(N), Y ~ Poisson(Cr N). With ``P(Y > n)/(Cr N) = sum_{k>=n}
  p_Y(k)/(k+1)`` it needs no division by Cr N and is exact at Cr = 0 (see
  :func:`eps_crossflow_unmixed` for the form actually summed). The series is
  truncated after ``n_terms`` terms (static, default 96) and NTU is clipped to
  :func:`crossflow_ntu_limit`
  (39.46 for the default, 21.9 for 64 terms). Up to the limit the truncation
  error is below 1e-13 for ``n_terms >= 64`` (1.2e-14 for the default; measured
  against a 600-term sum of the regularized incomplete gamma functions). Above
  it the value is held at the limit's: at Cr = 1 that is 0.911 where the exact
  value creeps to 1 like NTU^(-1/2); at Cr = 0.5 the deficit to 1 is below 1e-3.
  Heat exchangers in this product run at NTU < 15. Cost: two (n_terms x
  n_terms) matrix-vector products per evaluation, a few hundred times a counterflow
  evaluation.
* ``"crossflow_cmax_mixed"`` (C_max mixed, C_min unmixed):
  eps = (1 - exp(-Cr (1 - e^{-N}))) / Cr.
* ``"crossflow_cmin_mixed"`` (C_min mixed, C_max unmixed):
  eps = 1 - exp(-(1 - e^{-Cr N}) / Cr).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..solvers.roots import (
    _asfloat,
    _bracketed_root,
    _float_dtype,
    _log1p_over,
    _one_minus_exp_over,
)

__all__ = [
    "ARRANGEMENTS",
    "approach_coefficient",
    "crossflow_ntu_limit",
    "effectiveness",
    "eps_counterflow",
    "eps_crossflow_cmax_mixed",
    "eps_crossflow_cmin_mixed",
    "eps_crossflow_unmixed",
    "eps_parallel",
    "hx_duty",
    "ntu_from_effectiveness",
    "ua_flow_scaled",
    "ua_from_approach",
]

ARRANGEMENTS = (
    "counterflow",
    "parallel",
    "crossflow_unmixed",
    "crossflow_cmax_mixed",
    "crossflow_cmin_mixed",
)

_DEFAULT_TERMS = 96


def _unknown(arrangement) -> ValueError:
    return ValueError(f"unknown heat-exchanger arrangement {arrangement!r}; expected one of {ARRANGEMENTS}")


def _prep(ntu, cr):
    dtype = _float_dtype(ntu, cr)
    return _asfloat(dtype, ntu, cr)


def eps_counterflow(ntu, cr):
    """Counterflow effectiveness, exact, smooth through Cr = 1 (eps = N/(1+N))."""
    ntu, cr = _prep(ntu, cr)
    a = ntu * (1.0 - cr)
    nphi = ntu * _one_minus_exp_over(a)
    return nphi / (nphi + jnp.exp(-a))


def eps_parallel(ntu, cr):
    """Parallel-flow effectiveness, exact: (1 - e^{-N(1+Cr)}) / (1 + Cr)."""
    ntu, cr = _prep(ntu, cr)
    return -jnp.expm1(-ntu * (1.0 + cr)) / (1.0 + cr)


def eps_crossflow_cmax_mixed(ntu, cr):
    """Crossflow, C_max mixed and C_min unmixed: (1 - exp(-Cr(1 - e^{-N}))) / Cr."""
    ntu, cr = _prep(ntu, cr)
    x = -jnp.expm1(-ntu)
    return x * _one_minus_exp_over(cr * x)


def eps_crossflow_cmin_mixed(ntu, cr):
    """Crossflow, C_min mixed and C_max unmixed: 1 - exp(-(1 - e^{-Cr N}) / Cr)."""
    ntu, cr = _prep(ntu, cr)
    return -jnp.expm1(-ntu * _one_minus_exp_over(cr * ntu))


def crossflow_ntu_limit(n_terms: int = _DEFAULT_TERMS) -> float:
    """Largest NTU for which the both-unmixed series truncated after ``n_terms``
    terms is used as is: the mean m with ``m + 9 sqrt(m) = n_terms``, where the
    Poisson tail beyond the last term is negligible (39.46 for 96 terms)."""
    root = (-9.0 + math.sqrt(81.0 + 4.0 * n_terms)) / 2.0
    return root * root


def _poisson_pmf(m, n_terms: int):
    """Poisson pmf ``e^{-m} m^k / k!`` of mean ``m[..., None]`` for k = 0 ..
    n_terms - 1 (last axis), smooth at m = 0 including gradients: the orders below
    4 are explicit polynomials, the rest use logarithms (their value and
    derivative at m = 0 are 0)."""
    dtype = m.dtype
    m = m[..., None]
    e = jnp.exp(-m)
    low = jnp.concatenate([e, e * m, e * m**2 / 2.0, e * m**3 / 6.0], axis=-1)
    k_hi = np.arange(4, n_terms, dtype=np.float64)
    lgam = np.array([math.lgamma(k + 1.0) for k in k_hi])
    shape = (1,) * (m.ndim - 1) + (n_terms - 4,)
    k_hi = jnp.asarray(k_hi, dtype).reshape(shape)
    lgam = jnp.asarray(lgam, dtype).reshape(shape)
    pos = m > 0
    m_safe = jnp.where(pos, m, jnp.ones_like(m))
    high = jnp.where(pos, jnp.exp(k_hi * jnp.log(m_safe) - m_safe - lgam), 0.0)
    return jnp.concatenate([low, high], axis=-1)


def _crossflow_weights(n_terms: int, dtype):
    j = np.arange(n_terms, dtype=np.float64)[:, None]
    k = np.arange(n_terms, dtype=np.float64)[None, :]
    direct = np.minimum(j, k + 1.0)  # sum_n [n < j][n <= k]
    complement = np.where(j <= k, k + 1.0 - j, 0.0)  # sum_n [n >= j][n <= k]
    return jnp.asarray(direct, dtype), jnp.asarray(complement, dtype)


def eps_crossflow_unmixed(ntu, cr, n_terms: int = _DEFAULT_TERMS):
    """Crossflow effectiveness with both streams unmixed: the exact series
    truncated after ``n_terms`` terms (static, at least 8; see the module
    docstring for its accuracy; NTU is clipped to :func:`crossflow_ntu_limit`).

    With q_k = p_Y(k)/(k+1), exchanging the order of summation in
    ``sum_n P(X > n) U_n`` gives the bilinear form
    ``sum_{j,k} p_X(j) q_k min(j, k+1)``, which truncates the tails of both X and
    Y; using ``P(X > n) = 1 - P(X <= n)`` instead gives
    ``sum_k p_Y(k) - sum_{j<=k} p_X(j) q_k (k+1-j)``, which truncates only the tail
    of Y (the smaller one, Cr <= 1). The first form is used for NTU < 1 (no
    cancellation when eps is small), the second above.
    """
    if n_terms < 8:
        raise ValueError("n_terms must be at least 8")
    ntu, cr = _prep(ntu, cr)
    dtype = ntu.dtype
    ntu = jnp.minimum(ntu, crossflow_ntu_limit(n_terms))
    ntu, cr = jnp.broadcast_arrays(ntu, cr)
    p_x = _poisson_pmf(ntu, n_terms)
    k = jnp.arange(n_terms, dtype=dtype).reshape((1,) * ntu.ndim + (n_terms,))
    q_y = _poisson_pmf(cr * ntu, n_terms) / (k + 1.0)
    direct, complement = _crossflow_weights(n_terms, dtype)
    hi = jax.lax.Precision.HIGHEST
    small = jnp.sum(jnp.matmul(p_x, direct, precision=hi) * q_y, axis=-1)
    p_y_sum = jnp.sum(q_y * (k + 1.0), axis=-1)  # = sum_n U_n of the truncated series
    large = p_y_sum - jnp.sum(jnp.matmul(p_x, complement, precision=hi) * q_y, axis=-1)
    return jnp.where(ntu < 1.0, small, large)


def effectiveness(ntu, cr, arrangement: str = "counterflow", n_terms: int = _DEFAULT_TERMS):
    """Effectiveness for a named ``arrangement`` (static; one of :data:`ARRANGEMENTS`)."""
    if arrangement == "counterflow":
        return eps_counterflow(ntu, cr)
    if arrangement == "parallel":
        return eps_parallel(ntu, cr)
    if arrangement == "crossflow_unmixed":
        return eps_crossflow_unmixed(ntu, cr, n_terms)
    if arrangement == "crossflow_cmax_mixed":
        return eps_crossflow_cmax_mixed(ntu, cr)
    if arrangement == "crossflow_cmin_mixed":
        return eps_crossflow_cmin_mixed(ntu, cr)
    raise _unknown(arrangement)


def ntu_from_effectiveness(eps, cr, arrangement: str = "counterflow", n_terms: int = _DEFAULT_TERMS):
    """NTU that gives effectiveness ``eps`` at ``cr`` (inverse of :func:`effectiveness`).

    Closed forms for counterflow, parallel and both one-stream-mixed crossflows;
    a bracketed Newton solve (implicit derivatives) for crossflow both unmixed.
    ``eps`` must be below the arrangement's NTU -> infinity limit (1 for
    counterflow and crossflow unmixed, 1/(1+Cr) for parallel,
    (1 - e^{-Cr})/Cr and 1 - e^{-1/Cr} for the mixed crossflows); at or beyond it
    the result is +inf (or, for crossflow unmixed, the clipped NTU limit).
    """
    eps, cr = _prep(eps, cr)
    if arrangement == "counterflow":
        # NTU = log((1 - eps Cr)/(1 - eps)) / (1 - Cr) = eps/(1-eps) * log1p(z)/z,
        # z = eps (1 - Cr)/(1 - eps): smooth through Cr = 1.
        r = eps / (1.0 - eps)
        return r * _log1p_over(r * (1.0 - cr))
    if arrangement == "parallel":
        return -jnp.log1p(-eps * (1.0 + cr)) / (1.0 + cr)
    if arrangement == "crossflow_cmax_mixed":
        # 1 - Cr eps = exp(-Cr x), x = 1 - e^{-N}: x = -log(1 - Cr eps)/Cr.
        x = eps * _log1p_over(-cr * eps)
        return -jnp.log1p(-x)
    if arrangement == "crossflow_cmin_mixed":
        # s = -log(1 - eps) = (1 - e^{-Cr N})/Cr: N = -log(1 - Cr s)/Cr.
        s = -jnp.log1p(-eps)
        return s * _log1p_over(-cr * s)
    if arrangement == "crossflow_unmixed":
        limit = crossflow_ntu_limit(n_terms)
        lo = jnp.zeros_like(eps * cr)
        hi = jnp.full_like(lo, limit)
        return _bracketed_root(lambda n: eps_crossflow_unmixed(n, cr, n_terms) - eps, lo, hi)
    raise _unknown(arrangement)


def hx_duty(ua, c_hot, c_cold, t_hot_in, t_cold_in, arrangement: str = "counterflow"):
    """Duty and outlet temperatures of a two-stream heat exchanger.

    Args:
        ua: overall conductance UA, W/K.
        c_hot, c_cold: capacity rates of the hot and cold streams, W/K (> 0).
        t_hot_in, t_cold_in: inlet temperatures, K.
        arrangement: static flow arrangement.

    Returns:
        ``(q, t_hot_out, t_cold_out, eps)``: heat from hot to cold stream in W
        (negative when ``t_hot_in < t_cold_in``), outlet temperatures in K, and
        the effectiveness.
    """
    dtype = _float_dtype(ua, c_hot, c_cold, t_hot_in, t_cold_in)
    ua, c_hot, c_cold, t_hot_in, t_cold_in = _asfloat(dtype, ua, c_hot, c_cold, t_hot_in, t_cold_in)
    c_min = jnp.minimum(c_hot, c_cold)
    c_max = jnp.maximum(c_hot, c_cold)
    eps = effectiveness(ua / c_min, c_min / c_max, arrangement)
    q = eps * c_min * (t_hot_in - t_cold_in)
    return q, t_hot_in - q / c_hot, t_cold_in + q / c_cold, eps


def approach_coefficient(ua, c_stream, c_other, arrangement: str = "counterflow"):
    """Outlet approach per watt of duty, K/W.

    For a stream of capacity ``c_stream`` exchanging heat with a stream of
    capacity ``c_other``: ``|T_stream_out - T_other_in| = a * |Q|`` with
    ``a = 1/(eps C_min) - 1/c_stream``. For a hot stream cooled by a cold inlet,
    ``T_hot_out = T_cold_in + a Q``; this is how a heat exchanger adds to the
    temperature of a loop that it cools.
    """
    dtype = _float_dtype(ua, c_stream, c_other)
    ua, c_stream, c_other = _asfloat(dtype, ua, c_stream, c_other)
    c_min = jnp.minimum(c_stream, c_other)
    c_max = jnp.maximum(c_stream, c_other)
    eps = effectiveness(ua / c_min, c_min / c_max, arrangement)
    return 1.0 / (eps * c_min) - 1.0 / c_stream


def ua_from_approach(approach, q, c_stream, c_other, arrangement: str = "counterflow"):
    """UA (W/K) that gives a rated outlet approach.

    A stream of capacity ``c_stream`` is cooled (or heated) by ``q`` watts by a
    stream of capacity ``c_other``; its outlet ends ``approach`` kelvin from the
    other stream's inlet (for a CDU: secondary supply minus facility supply).
    Then ``eps = q / (C_min (approach + q / c_stream))`` and UA = NTU(eps) C_min.

    The rating must be feasible: ``eps`` below the arrangement's NTU -> infinity
    limit (for counterflow: ``approach > q (1/c_other - 1/c_stream)`` when
    ``c_other < c_stream``). Infeasible ratings give UA = +inf or NaN; the
    application layer checks ratings before calling this.
    """
    dtype = _float_dtype(approach, q, c_stream, c_other)
    approach, q, c_stream, c_other = _asfloat(dtype, approach, q, c_stream, c_other)
    c_min = jnp.minimum(c_stream, c_other)
    c_max = jnp.maximum(c_stream, c_other)
    eps = q / (c_min * (approach + q / c_stream))
    return ntu_from_effectiveness(eps, c_min / c_max, arrangement) * c_min


def ua_flow_scaled(ua_rated, ratio_a, ratio_b, share_a, exponent_a, exponent_b):
    """UA at off-rated flows from a two-resistance model.

    ``1/UA = share_a / (UA_rated ratio_a^exponent_a)
    + (1 - share_a) / (UA_rated ratio_b^exponent_b)``, where ``ratio_*`` is the
    flow of each side over its rated flow and ``share_a`` the fraction of the
    rated thermal resistance on side a (film coefficients h ~ flow^exponent;
    0.8 for turbulent tube or fin flow, about 0.6-0.7 for plate heat exchangers).
    A zero flow ratio gives UA = 0 (to within the flow floored at the smallest
    normal number of the dtype).
    """
    dtype = _float_dtype(ua_rated, ratio_a, ratio_b, share_a, exponent_a, exponent_b)
    ua_rated, ratio_a, ratio_b, share_a, exponent_a, exponent_b = _asfloat(
        dtype, ua_rated, ratio_a, ratio_b, share_a, exponent_a, exponent_b
    )
    ga = jnp.power(jnp.maximum(ratio_a, jnp.finfo(dtype).tiny), exponent_a)
    gb = jnp.power(jnp.maximum(ratio_b, jnp.finfo(dtype).tiny), exponent_b)
    return ua_rated / (share_a / ga + (1.0 - share_a) / gb)
