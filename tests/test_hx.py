"""Effectiveness-NTU heat exchangers: published regression points, exact limits,
an independent series evaluation, inverses, UA rating and JAX transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammainc

from aidc_thermo.kernels import hx
from aidc_thermo.validation.plant import hx_regression

# validation.md: NTU = 5, Cr = 0.7, with the number of digits given there
# (counterflow to 12 decimals, the others to 16 significant digits); the values
# ship in aidc_thermo/data/validation.json and thermo validate reports them.
REGRESSION = hx_regression()


def crossflow_reference(ntu, cr, terms=600):
    """Both-unmixed series from scipy's regularized incomplete gamma functions:
    P(Poisson(m) > n) = gammainc(n + 1, m)."""
    n = np.arange(terms)
    return float(np.sum(gammainc(n + 1, ntu) * gammainc(n + 1, cr * ntu)) / (cr * ntu))


def textbook(arrangement, ntu, cr):
    """Closed forms as printed (Incropera Table 11.3), in numpy, for Cr in (0, 1)."""
    if arrangement == "counterflow":
        e = np.exp(-ntu * (1 - cr))
        return (1 - e) / (1 - cr * e)
    if arrangement == "parallel":
        return (1 - np.exp(-ntu * (1 + cr))) / (1 + cr)
    if arrangement == "crossflow_cmax_mixed":
        return (1 - np.exp(-cr * (1 - np.exp(-ntu)))) / cr
    if arrangement == "crossflow_cmin_mixed":
        return 1 - np.exp(-(1 - np.exp(-cr * ntu)) / cr)
    return crossflow_reference(ntu, cr)


@pytest.mark.parametrize("arrangement", sorted(REGRESSION))
def test_regression_points(arrangement):
    eps, value, tol = REGRESSION[arrangement]
    assert eps == float(hx.effectiveness(5.0, 0.7, arrangement))
    assert abs(eps - value) <= tol


@pytest.mark.parametrize("arrangement", hx.ARRANGEMENTS)
def test_against_printed_formulas(arrangement):
    n, c = np.meshgrid([0.05, 0.7, 2.0, 6.0, 15.0], [0.05, 0.3, 0.75, 0.97], indexing="ij")
    got = hx.effectiveness(jnp.asarray(n), jnp.asarray(c), arrangement)
    ref = np.vectorize(lambda a, b: textbook(arrangement, a, b))(n, c)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("arrangement", hx.ARRANGEMENTS)
def test_cr_zero_limit_is_exact(arrangement):
    ntu = jnp.array([0.0, 1e-6, 0.3, 1.0, 4.0, 12.0])
    eps = hx.effectiveness(ntu, jnp.zeros_like(ntu), arrangement)
    np.testing.assert_allclose(eps, -np.expm1(-np.asarray(ntu)), rtol=1e-14, atol=0)


def test_counterflow_cr_one_limit_and_continuity():
    ntu = jnp.array([1e-3, 0.5, 2.0, 10.0, 1e3])
    exact = ntu / (1 + ntu)
    np.testing.assert_allclose(hx.eps_counterflow(ntu, jnp.ones_like(ntu)), exact, rtol=1e-14)
    # Approaching Cr = 1 from both sides of the removable singularity: no jump.
    for d in (1e-3, 1e-6, 1e-9, 1e-12):
        for c in (1 - d, 1 + d):
            e = hx.eps_counterflow(ntu, jnp.full_like(ntu, c))
            assert np.all(np.isfinite(e))
            # d eps / d Cr is O(1), so the difference is O(d)
            np.testing.assert_allclose(e, ntu / (1 + ntu), atol=5 * d + 1e-15)


@pytest.mark.parametrize("cr", [0.0, 0.4, 1.0])
def test_ntu_to_infinity(cr):
    big = 1e6
    assert float(hx.eps_counterflow(big, cr)) == pytest.approx(1.0, abs=1.0 / big * 2)
    assert float(hx.eps_parallel(big, cr)) == pytest.approx(1.0 / (1.0 + cr), rel=1e-15)
    if cr > 0:
        assert float(hx.eps_crossflow_cmax_mixed(big, cr)) == pytest.approx((1 - np.exp(-cr)) / cr, rel=1e-14)
        assert float(hx.eps_crossflow_cmin_mixed(big, cr)) == pytest.approx(1 - np.exp(-1 / cr), rel=1e-14)


def test_crossflow_unmixed_series_over_range():
    limit = hx.crossflow_ntu_limit()
    ntus = np.concatenate([np.geomspace(1e-4, 1.0, 6), np.linspace(1.5, limit, 10)])
    crs = np.array([1e-7, 0.1, 0.5, 0.8, 1.0])
    n, c = np.meshgrid(ntus, crs, indexing="ij")
    got = np.asarray(jax.jit(hx.eps_crossflow_unmixed)(jnp.asarray(n), jnp.asarray(c)))
    ref = np.vectorize(crossflow_reference)(n, c)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=2e-14)
    # Clipped above the limit: finite, monotone, and never above 1.
    e_hi = hx.eps_crossflow_unmixed(jnp.array([limit, 2 * limit, 1e4]), jnp.ones(3))
    assert np.all(np.diff(np.asarray(e_hi)) >= 0) and float(e_hi[-1]) < 1.0


def test_ordering_of_arrangements():
    ntu = jnp.asarray(np.geomspace(0.1, 20.0, 15))
    n, c = jnp.meshgrid(ntu, jnp.array([0.2, 0.6, 1.0]), indexing="ij")
    cf = hx.eps_counterflow(n, c)
    pf = hx.eps_parallel(n, c)
    for arr in ("crossflow_unmixed", "crossflow_cmax_mixed", "crossflow_cmin_mixed"):
        e = hx.effectiveness(n, c, arr)
        assert np.all(pf <= e + 1e-15) and np.all(e <= cf + 1e-15), arr


@pytest.mark.parametrize("arrangement", hx.ARRANGEMENTS)
def test_inverse_round_trip(arrangement):
    n, c = np.meshgrid([0.05, 0.5, 1.0, 3.0, 8.0], [0.0, 0.35, 0.9, 1.0], indexing="ij")
    n, c = jnp.asarray(n), jnp.asarray(c)

    @jax.jit
    def round_trip(n, c):
        return hx.ntu_from_effectiveness(hx.effectiveness(n, c, arrangement), c, arrangement)

    np.testing.assert_allclose(round_trip(n, c), n, rtol=1e-9)


@pytest.mark.parametrize("arrangement", ["counterflow", "crossflow_unmixed", "parallel"])
def test_gradients_match_finite_differences(arrangement):
    def fd(fun, x, h):
        return (fun(x + h) - fun(x - h)) / (2 * h)

    eff = jax.jit(lambda a, b: hx.effectiveness(a, b, arrangement))
    grad = jax.jit(jax.grad(lambda a, b: hx.effectiveness(a, b, arrangement), (0, 1)))
    for ntu, cr in [(0.3, 0.2), (2.0, 0.7), (5.0, 1.0), (2.0, 1e-9), (1.2, 0.999999)]:
        ntu, cr = jnp.float64(ntu), jnp.float64(cr)
        g_n, g_c = grad(ntu, cr)
        assert np.isfinite(g_n) and np.isfinite(g_c)
        ref_n = fd(lambda a, c=cr: float(eff(a, c)), ntu, 1e-5)
        ref_c = fd(lambda b, n=ntu: float(eff(n, b)), cr, 1e-5)
        assert float(g_n) == pytest.approx(ref_n, rel=1e-7, abs=1e-9)
        assert float(g_c) == pytest.approx(ref_c, rel=1e-6, abs=1e-9)


@pytest.mark.slow  # default-suite time (CI machine): a validation that compiles for tens of seconds
def test_gradients_at_exact_limits():
    # d eps/dNTU at Cr = 0 is e^{-N}; at Cr = 1 (counterflow) 1/(1+N)^2.
    for arr in hx.ARRANGEMENTS:
        g = jax.grad(lambda n, a=arr: hx.effectiveness(n, 0.0, a))(2.0)
        assert float(g) == pytest.approx(np.exp(-2.0), rel=1e-12), arr
    g_n, g_c = jax.grad(hx.eps_counterflow, (0, 1))(2.0, 1.0)
    assert float(g_n) == pytest.approx(1.0 / 9.0, rel=1e-12)
    # d eps/dCr at Cr = 1 from the analytic formula on both sides (numpy, central).
    h = 1e-5
    ref = (textbook("counterflow", 2.0, 1 + h) - textbook("counterflow", 2.0, 1 - h)) / (2 * h)
    assert float(g_c) == pytest.approx(ref, rel=1e-6)
    # Crossflow both unmixed at Cr = 0: one-sided difference of the independent series.
    g_c0 = jax.grad(lambda c: hx.eps_crossflow_unmixed(2.0, c))(0.0)
    fd = (crossflow_reference(2.0, 2e-6) - (1 - np.exp(-2.0))) / 2e-6
    assert float(g_c0) == pytest.approx(fd, rel=1e-4)


def test_float32_matches_float64():
    ntu = np.array([0.1, 1.0, 3.0, 7.0], np.float32)
    cr = np.array([0.0, 0.5, 0.9, 1.0], np.float32)
    for arr in hx.ARRANGEMENTS:
        eff = jax.jit(lambda a, b, arr=arr: hx.effectiveness(a, b, arr))
        e32 = eff(jnp.asarray(ntu), jnp.asarray(cr))
        e64 = eff(jnp.asarray(ntu, jnp.float64), jnp.asarray(cr, jnp.float64))
        assert e32.dtype == jnp.float32 and e64.dtype == jnp.float64
        np.testing.assert_allclose(e32, e64, rtol=2e-6, atol=1e-7)


def test_vmap_equals_loop():
    ntu = jnp.array([0.2, 1.0, 4.0])
    cr = jnp.array([0.0, 0.6, 1.0])
    f = jax.jit(jax.vmap(lambda a, b: hx.eps_crossflow_unmixed(a, b)))
    loop = [float(hx.eps_crossflow_unmixed(a, b)) for a, b in zip(ntu, cr, strict=True)]
    np.testing.assert_allclose(f(ntu, cr), loop, rtol=1e-15)


def test_hx_duty_energy_balance_and_second_law():
    rng = np.random.default_rng(3)
    for _ in range(20):
        ua, ch, cc = rng.uniform(100, 5000), rng.uniform(200, 3000), rng.uniform(200, 3000)
        th, tc = 330.0 + rng.uniform(0, 30), 290.0 + rng.uniform(0, 20)
        for arr in hx.ARRANGEMENTS:
            q, tho, tco, eps = (float(v) for v in hx.hx_duty(ua, ch, cc, th, tc, arr))
            assert ch * (th - tho) == pytest.approx(q, rel=1e-13)
            assert cc * (tco - tc) == pytest.approx(q, rel=1e-13)
            assert 0 < eps < 1 and tc < tho <= th and tc <= tco < th
            if arr == "parallel":
                assert tco <= tho + 1e-12  # parallel flow cannot cross


def test_cdu_ua_from_rated_approach_round_trip():
    # CDU: secondary (hot) 800 kW, 3 K approach of secondary supply over facility supply.
    q, c_sec, c_fac = 8.0e5, 7.5e4, 1.0e5
    ua = float(hx.ua_from_approach(3.0, q, c_sec, c_fac))
    t_fac_in = 305.15
    t_sec_in = t_fac_in + 3.0 + q / c_sec  # secondary return
    q2, t_sec_out, t_fac_out, _ = hx.hx_duty(ua, c_sec, c_fac, t_sec_in, t_fac_in)
    assert float(q2) == pytest.approx(q, rel=1e-12)
    assert float(t_sec_out) - t_fac_in == pytest.approx(3.0, rel=1e-10)
    # The approach coefficient gives the same outlet for any duty (linear in Q).
    a = float(hx.approach_coefficient(ua, c_sec, c_fac))
    assert a * q == pytest.approx(3.0, rel=1e-10)


def test_ua_flow_scaling():
    # At rated flows UA is the rated value; halving the flow on a side that holds
    # the whole resistance scales UA by 0.5^n; zero flow gives zero UA.
    assert float(hx.ua_flow_scaled(1000.0, 1.0, 1.0, 0.6, 0.8, 0.7)) == pytest.approx(1000.0)
    assert float(hx.ua_flow_scaled(1000.0, 0.5, 3.0, 1.0, 0.8, 0.7)) == pytest.approx(1000.0 * 0.5**0.8, rel=1e-14)
    ua = float(hx.ua_flow_scaled(1000.0, 0.5, 2.0, 0.6, 0.8, 0.7))
    assert ua == pytest.approx(1000.0 / (0.6 / 0.5**0.8 + 0.4 / 2.0**0.7), rel=1e-14)
    assert float(hx.ua_flow_scaled(1000.0, 0.0, 1.0, 0.6, 0.8, 0.7)) < 1e-200


def test_unknown_arrangement_raises():
    with pytest.raises(ValueError, match="arrangement"):
        hx.effectiveness(1.0, 0.5, "counter-flow")
