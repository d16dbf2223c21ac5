"""The solver shelf: kernels/solvers/krylov.py (one signature, one stopping
rule, (x, SolveInfo)) and kernels/solvers/multigrid.py (the V-cycle both
7-point solvers use), checked against dense solves, in float32 and float64,
under jit and vmap, with a solver passed in."""

import ast
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aidc_thermo.kernels import advdiff, krylov, linsolve, multigrid
from aidc_thermo.kernels.solvers.linsolve import Conductances

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
F64 = jnp.float64


def _spd(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    return jnp.asarray(m @ m.T + n * np.eye(n), dtype)


def _nonsym(n, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal((n, n)) + 2.0 * np.sqrt(n) * np.eye(n), dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", ["cg", "fcg", "bicgstab"])
def test_each_solver_meets_the_one_rule_against_a_dense_solve(name, dtype):
    n = 40
    a = _spd(n, dtype) if name != "bicgstab" else _nonsym(n, dtype)
    b = jnp.asarray(np.random.default_rng(2).standard_normal(n), dtype)
    rtol = 1e-4 if dtype == jnp.float32 else 1e-10
    inv_diag = 1.0 / jnp.diag(a)
    solver = krylov.SOLVERS[name]
    x, info = jax.jit(lambda a, b: solver(lambda v: a @ v, b, lambda r: inv_diag * r, rtol=rtol, max_iterations=200))(
        a, b
    )
    assert x.dtype == dtype and info.residual.dtype == dtype
    assert bool(info.converged)
    true_res = float(jnp.linalg.norm(b - a @ x) / jnp.linalg.norm(b))
    # the rule is on the recursively updated residual; the true one agrees to roundoff
    assert float(info.residual) <= rtol
    assert true_res <= 10 * rtol
    np.testing.assert_allclose(float(info.history[int(info.iterations)]), float(info.residual), rtol=0)
    assert np.all(np.isnan(np.asarray(info.history[int(info.iterations) + 1 :])))
    x_ref = np.linalg.solve(np.asarray(a, np.float64), np.asarray(b, np.float64))
    np.testing.assert_allclose(np.asarray(x, np.float64), x_ref, rtol=0, atol=1e3 * rtol * np.abs(x_ref).max())


def test_atol_x0_and_pytrees():
    a = _spd(20, jnp.float64)
    b = jnp.linspace(1.0, 2.0, 20)
    # atol above ||b||: the zero start already meets the rule, no iteration
    x, info = krylov.cg(lambda v: a @ v, b, rtol=1e-12, atol=1e3, max_iterations=50)
    assert int(info.iterations) == 0 and bool(info.converged) and float(jnp.abs(x).max()) == 0.0
    # starting from the answer: converged at once, relative to ||b||
    x_ref = jnp.linalg.solve(a, b)
    _, info = krylov.bicgstab(lambda v: a @ v, b, x0=x_ref, rtol=1e-8, max_iterations=50)
    assert int(info.iterations) == 0 and float(info.history[0]) < 1e-8
    # a tuple of arrays is one unknown: the two blocks are solved together
    b2 = (b, 2.0 * b)
    xs, info = krylov.bicgstab(lambda v: (a @ v[0], a @ v[1]), b2, rtol=1e-12, max_iterations=100)
    assert bool(info.converged)
    np.testing.assert_allclose(np.asarray(xs[1]), 2.0 * np.asarray(x_ref), rtol=1e-9)


def test_an_unreachable_tolerance_is_reported_not_hidden():
    a = _nonsym(30, jnp.float64)
    b = jnp.ones(30)
    _, info = krylov.bicgstab(lambda v: a @ v, b, rtol=1e-14, max_iterations=3)
    assert not bool(info.converged) and int(info.iterations) == 3
    assert float(info.residual) > 1e-14


def test_vmap_over_right_hand_sides():
    a = _spd(16, jnp.float64)
    bs = jnp.stack([jnp.linspace(1.0, 2.0, 16), jnp.linspace(-1.0, 3.0, 16)])
    xs, info = jax.vmap(lambda b: krylov.cg(lambda v: a @ v, b, rtol=1e-12, max_iterations=64))(bs)
    assert info.iterations.shape == (2,) and bool(jnp.all(info.converged))
    np.testing.assert_allclose(np.asarray(xs), np.linalg.solve(np.asarray(a), np.asarray(bs).T).T, rtol=1e-9)


def _conductances(shape, dtype, seed=3):
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    gx = rng.uniform(0.5, 2.0, (nx + 1, ny, nz))
    gy = rng.uniform(0.5, 2.0, (nx, ny + 1, nz))
    gz = rng.uniform(0.5, 20.0, (nx, ny, nz + 1))
    return Conductances(*(jnp.asarray(g, dtype) for g in (gx, gy, gz)), c=jnp.zeros(shape, dtype))


def _dense_solution(apply, op, b):
    shape = b.shape
    eye = jnp.eye(b.size, dtype=b.dtype)
    dense = np.asarray(jax.vmap(lambda e: apply(op, e.reshape(shape)).reshape(-1))(eye), np.float64).T
    return np.linalg.solve(dense, np.asarray(b, np.float64).reshape(-1)).reshape(shape)


def test_linsolve_and_advdiff_take_a_solver_and_agree_with_dense():
    dtype = jnp.float64
    shape = (8, 6, 4)
    op = _conductances(shape, dtype)
    b = jnp.asarray(np.random.default_rng(4).standard_normal(shape), dtype)
    tol = 1e-10
    # the same links with a flow along x: advection-diffusion
    fx = jnp.full((shape[0] + 1, shape[1], shape[2]), 0.7, dtype)
    ad = advdiff.AdvectionDiffusion(op, fx, jnp.zeros((8, 7, 4), dtype), jnp.zeros((8, 6, 5), dtype))
    mg = linsolve.MultigridConfig(tol=tol)
    cfg = advdiff.KrylovConfig(tol=tol)

    @jax.jit
    def run(op, ad, b):
        # symmetric: BiCGSTAB passed in for the default flexible CG; non-symmetric:
        # a reused hierarchy, from zero and then from the answer
        x_b, i_b = linsolve.solve(op, b, mg, solver=krylov.bicgstab)
        hier = advdiff.multigrid_setup(ad, cfg)
        x_a, i_a = advdiff.krylov_solve(ad, b, cfg, hier=hier)
        x_r, i_r = advdiff.krylov_solve(ad, b, cfg, hier=hier, x0=x_a)
        return (x_b, x_a, x_r), (i_b, i_a, i_r)

    (x_b, x_a, x_r), infos = run(op, ad, b)
    assert all(bool(i.converged) for i in infos)
    assert int(infos[2].iterations) <= 1
    sym_ref = _dense_solution(linsolve.apply, op, b)
    ad_ref = _dense_solution(advdiff.apply, ad, b)
    for x, ref in ((x_b, sym_ref), (x_a, ad_ref), (x_r, ad_ref)):
        np.testing.assert_allclose(np.asarray(x), ref, atol=50 * tol * np.abs(ref).max())


def test_the_v_cycle_is_a_contraction_and_symmetric_for_a_symmetric_operator():
    shape = (8, 8, 4)
    op = _conductances(shape, jnp.float64)
    rng = np.random.default_rng(5)
    u, v = (jnp.asarray(rng.standard_normal(shape)) for _ in range(2))
    cfg = linsolve.MultigridConfig(line_axis=2, coarse_size=16, dense_limit=16, mixed_precision=False)

    @jax.jit
    def run(op, u, v):
        hier = linsolve.multigrid_setup(op, cfg)
        rs = jnp.stack([u, v, linsolve.apply(op, u)])
        mu, mv, mau = jax.vmap(lambda r: linsolve.v_cycle(hier, cfg, r))(rs)
        return len(hier.levels), jnp.vdot(mu, v), jnp.vdot(u, mv), u - mau

    levels, muv, umv, e1 = run(op, u, v)
    assert int(levels) >= 3  # through coarsening, not only the dense solve
    np.testing.assert_allclose(float(muv), float(umv), rtol=1e-10)  # a symmetric preconditioner
    assert float(jnp.linalg.norm(e1)) < 0.5 * float(jnp.linalg.norm(u))  # I - M A contracts
    np.testing.assert_array_equal(multigrid.from_internal(multigrid.to_internal(u, 1), 1), u)


#: ``multigrid.series_parallel`` coarsening axis 0 in pairs, jitted (op by op it compiles a program per operation)
_pairs = jax.jit(lambda links, c: multigrid.series_parallel(links, c, (2, 1, 1)))


def test_an_odd_chain_coarsens_to_the_series_network_of_its_groups():
    """Odd lengths coarsen in pairs with one group of three cells at the end:
    the coarse link between two groups is the resistance between their centres
    (a pair's between its two cells, the triple's at its middle cell), the
    boundary links run from the end groups' centres to the walls; restriction
    and prolongation are each other's transpose, and a face field keeps the
    faces between the groups."""
    rng = np.random.default_rng(2)
    # jitted: op by op, the three lengths compiled some 240 small programs
    restrict = jax.jit(lambda x: multigrid.restrict(x, (2, 1, 1)))
    prolong = jax.jit(lambda e, shape: multigrid.prolong(e, (2, 1, 1), shape), static_argnums=1)
    faces_of = jax.jit(lambda f: multigrid.coarse_faces(f, 0))
    for n in (5, 7, 13):
        m = (n - 1) // 2
        g = rng.uniform(0.5, 2.0, n + 1)  # face links 0 .. n (0 and n: to the walls)
        r = 1.0 / g
        centre = np.concatenate([[0.0], np.cumsum(r[1:n])])  # resistance from cell 0's centre to each cell's
        groups = [0.5 * (centre[2 * i] + centre[2 * i + 1]) for i in range(m - 1)] + [centre[n - 2]]
        expected = [r[0] + groups[0]] + list(np.diff(groups)) + [centre[n - 1] - groups[-1] + r[n]]
        links = (jnp.asarray(g.reshape(n + 1, 1, 1)), jnp.ones((n, 2, 1)), jnp.ones((n, 1, 2)))
        (gx, gy, _), c = _pairs(links, jnp.ones((n, 1, 1)))
        np.testing.assert_allclose(1.0 / np.asarray(gx).ravel(), expected, rtol=1e-13)
        np.testing.assert_array_equal(np.asarray(c).ravel(), [2.0] * (m - 1) + [3.0])
        np.testing.assert_array_equal(np.asarray(gy)[:, 0, 0], [2.0] * (m - 1) + [3.0])  # in parallel
        x, e = rng.standard_normal((n, 3, 4)), rng.standard_normal((m, 3, 4))
        lhs = float(jnp.vdot(restrict(jnp.asarray(x)), jnp.asarray(e)))
        rhs = float(jnp.vdot(jnp.asarray(x), prolong(jnp.asarray(e), x.shape)))
        assert abs(lhs - rhs) < 1e-12 * abs(lhs)
        faces = faces_of(jnp.arange(n + 1.0).reshape(n + 1, 1, 1))
        np.testing.assert_array_equal(np.asarray(faces).ravel(), list(range(0, n - 2, 2)) + [n])


def test_a_mesh_of_odd_axes_coarsens_to_a_dense_solve_and_stays_a_symmetric_contraction():
    """9 x 13 x 13 cells cannot be halved: the hierarchy used to stop there, at
    1,521 cells, above the dense limit (smoothing sweeps instead). Now it
    coarsens in groups of three down to a level the dense Cholesky takes, and
    the V-cycle is still a symmetric contraction, so CG converges with it."""
    shape = (9, 13, 13)
    op = _conductances(shape, F64, seed=4)
    cfg = linsolve.MultigridConfig(line_axis=0, coarse_size=64, mixed_precision=False)
    hier = jax.jit(lambda op: linsolve.multigrid_setup(op, cfg))(op)
    sizes = [int(np.prod(level.diag.shape)) for level in hier.levels]
    assert sizes[0] == 9 * 13 * 13 and len(sizes) >= 2
    assert sizes[-1] <= cfg.dense_limit and hier.coarse is not None
    rng = np.random.default_rng(6)
    u, v = (jnp.asarray(rng.standard_normal(shape)) for _ in range(2))
    # jitted: called op by op, the V-cycle and the solve take 8x longer (one small program per operation)
    v_cycle = jax.jit(lambda hier, r: linsolve.v_cycle(hier, cfg, r))
    mu, mv, mau = (v_cycle(hier, r) for r in (u, v, linsolve.apply(op, u)))
    np.testing.assert_allclose(float(jnp.vdot(mu, v)), float(jnp.vdot(u, mv)), rtol=1e-10)
    assert float(jnp.linalg.norm(u - mau)) < 0.5 * float(jnp.linalg.norm(u))
    b = linsolve.apply(op, u)
    x, info = jax.jit(lambda op, b: linsolve.solve(op, b, dataclasses.replace(cfg, tol=1e-10)))(op, b)
    assert bool(info.converged) and int(info.iterations) < 40
    np.testing.assert_allclose(np.asarray(x), np.asarray(u), rtol=0, atol=1e-7 * float(jnp.max(jnp.abs(u))))


def _channel(shape=(24, 16, 20), lo=3, hi=13):
    """A pressure-correction-like system: fluid cells linked to each other and
    to a fixed pressure beyond x+, solid cells isolated (no link, ``c = 1``);
    the fluid starts at an odd y, so the first coarsening pairs solid with
    fluid cells along y."""
    fluid = np.zeros(shape, bool)
    fluid[:, lo:hi, 2:] = True
    links = []
    for axis in range(3):
        pad = [(0, 0)] * 3
        pad[axis] = (1, 1)
        f = np.pad(fluid, pad)
        n = shape[axis]
        g = (np.take(f, range(n + 1), axis=axis) & np.take(f, range(1, n + 2), axis=axis)).astype(float)
        if axis == 0:
            g[-1] = fluid[-1]  # the outlet
        links.append(jnp.asarray(g))
    return Conductances(*links, c=jnp.asarray(np.where(fluid, 0.0, 1.0))), fluid


def test_an_isolated_cell_neither_cuts_nor_pins_the_group_it_is_merged_into():
    """A solid cell of the pressure correction (no link, ``c x = b``) merged
    with a fluid cell used to cut the group's coarse links (a zero link inside
    the group) and pin it with its ``c``: the coarse correction was lost next
    to every wall (on the unit cell at 166k cells: 10 CG iterations per
    pressure solve instead of 6-7). Now the group's path starts at its linked
    cell and its ``c`` counts only the linked cells'."""
    g = jnp.asarray([0.0, 0.0, 2.0, 4.0, 4.0]).reshape(5, 1, 1)  # cell 0 isolated, cells 1-3 linked
    links = (g, jnp.zeros((4, 2, 1)), jnp.zeros((4, 1, 2)))
    (gx, _, _), c = _pairs(links, jnp.asarray([7.0, 0.0, 0.0, 1.0]).reshape(4, 1, 1))
    # pair (0, 1) from cell 1's centre: link 2 whole, half of the second pair's inner link 3, to its centre
    np.testing.assert_allclose(np.asarray(gx).ravel(), [0.0, 1.0 / (1 / 2.0 + 0.5 / 4.0), 1.0 / (0.5 / 4.0 + 1 / 4.0)])
    np.testing.assert_array_equal(np.asarray(c).ravel(), [0.0, 1.0])  # cell 0's 7 left out
    alone = (jnp.zeros((3, 1, 1)), jnp.zeros((2, 2, 1)), jnp.zeros((2, 1, 2)))
    _, c_alone = _pairs(alone, jnp.asarray([7.0, 5.0]).reshape(2, 1, 1))
    assert float(c_alone.ravel()[0]) == 12.0  # a group of isolated cells keeps its c: still invertible

    op, fluid = _channel()
    b = jnp.asarray(np.where(fluid, np.random.default_rng(0).standard_normal(fluid.shape), 0.0))
    cfg = linsolve.MultigridConfig(line_axis=1, tol=1e-8, coarse_size=64, mixed_precision=False)
    x, info = jax.jit(lambda op, b: linsolve.solve(op, b, cfg))(op, b)
    assert bool(info.converged) and int(info.iterations) <= 12  # 19 before
    np.testing.assert_allclose(np.asarray(linsolve.apply(op, x)), np.asarray(b), atol=1e-7 * float(jnp.abs(b).max()))


def test_axis_weights_semi_coarsen_the_strong_transverse_axis_first():
    """Lines along axis 0; across them axis 2 links eight times as strongly as
    axis 1. Halving both transverse axes keeps that ratio at every level, and
    the point smoother across the lines damps the weak direction's error
    slowly; with ``axis_weights`` only axis 2 is halved until the two are
    within a factor 2, and CG needs fewer iterations (8 -> 5 here)."""
    w = (75.0, 0.75, 6.0)
    assert multigrid.coarsen_factors((8, 32, 32), 256, w) == (1, 1, 2)
    assert multigrid.coarse_weights(w, (1, 1, 2)) == (75.0, 0.75, 1.5)
    assert multigrid.coarsen_factors((8, 32, 16), 256, (75.0, 0.75, 1.5)) == (1, 2, 2)
    assert multigrid.coarsen_factors((8, 32, 32), 256) == (1, 2, 2)
    shape = (8, 16, 16)
    rng = np.random.default_rng(1)
    ranges = ((50, 100, (9, 16, 16)), (0.5, 1, (8, 17, 16)), (4, 8, (8, 16, 17)))
    op = Conductances(*(jnp.asarray(rng.uniform(lo, hi, s)) for lo, hi, s in ranges), c=jnp.zeros(shape))
    b = jnp.asarray(rng.standard_normal(shape))

    def solve(op, b, weights):
        cfg = linsolve.MultigridConfig(
            line_axis=0, tol=1e-8, coarse_size=16, dense_limit=64, mixed_precision=False, axis_weights=weights
        )
        # one program for the solve and the hierarchy it builds
        (x, info), hier = jax.jit(lambda op, b: (linsolve.solve(op, b, cfg), linsolve.multigrid_setup(op, cfg)))(op, b)
        assert bool(info.converged)
        np.testing.assert_allclose(
            np.asarray(linsolve.apply(op, x)), np.asarray(b), atol=1e-6 * float(jnp.abs(b).max())
        )
        return int(info.iterations), hier.levels

    plain, _ = solve(op, b, None)
    weighted, levels = solve(op, b, w)
    assert [level.diag.shape[1:] for level in levels[:3]] == [(16, 16), (16, 8), (8, 4)]
    assert weighted <= 6 < plain
    # the weak axis last: it is not halved, so its colours are not kept apart (the restriction merges one
    # cell of each colour only along a halved last axis), and the V-cycle is still a valid preconditioner
    swapped = Conductances(op.gx, jnp.swapaxes(op.gz, 1, 2), jnp.swapaxes(op.gy, 1, 2), c=op.c)
    again, levels = solve(swapped, jnp.swapaxes(b, 1, 2), (75.0, 6.0, 0.75))
    assert levels[0].halves is None and levels[0].color is not None and levels[1].diag.shape[1:] == (8, 16)
    assert again == weighted
    with pytest.raises(ValueError, match="axis_weights"):
        multigrid.CycleConfig(axis_weights=(1.0, 0.0, 1.0))
    # both configurations take the weights in user order (x, y, z) and hand them on in internal order
    xyz = (1.0, 2.0, 3.0)
    assert linsolve.MultigridConfig(line_axis=1, axis_weights=xyz).cycle().axis_weights == (2.0, 1.0, 3.0)
    assert advdiff.KrylovConfig(line_axis=2, axis_weights=xyz).cycle().axis_weights == (3.0, 1.0, 2.0)


def test_coarse_advection_on_odd_axes_conserves_each_groups_net_flow():
    """The advection-diffusion hierarchy keeps the face flows between groups
    (:func:`multigrid.coarse_faces`): every coarse cell's net outflow is the
    sum of its fine cells', on odd axes too."""
    rng = np.random.default_rng(8)
    shape = (9, 26, 30)  # halved once, then 9 x 13 x 15 (1,755 cells) in groups of three
    nx, ny, nz = shape
    g = _conductances(shape, F64, seed=9)
    flows = [jnp.asarray(rng.standard_normal(s)) for s in ((nx + 1, ny, nz), (nx, ny + 1, nz), (nx, ny, nz + 1))]
    ad = advdiff.AdvectionDiffusion(g, *flows)
    cfg = advdiff.KrylovConfig(line_axis=0)  # coarse_size 512: the LU takes the first level under it
    levels = jax.jit(lambda ad: advdiff.multigrid_setup(ad, cfg))(ad).levels
    assert [level.diag.shape for level in levels] == [(9, 26, 30), (9, 13, 15), (4, 6, 7)]
    for fine, coarse in zip(levels[:-1], levels[1:], strict=False):
        f = tuple(a // b for a, b in zip(fine.diag.shape, coarse.diag.shape, strict=True))
        np.testing.assert_allclose(
            np.asarray(advdiff.net_outflow(coarse.op)),
            np.asarray(multigrid.restrict(advdiff.net_outflow(fine.op), f)),
            rtol=1e-12,
            atol=1e-12,
        )


def test_the_colour_halves_hold_each_checkerboard_colour_once():
    """split() keeps exactly the cells of one checkerboard colour of axes 1
    and 2, in order along every line, and merge() puts both back."""
    shape = (3, 5, 6)
    x = jnp.arange(np.prod(shape), dtype=F64).reshape(shape)
    colour = (np.arange(5)[:, None] + np.arange(6)[None, :]) % 2
    halves = [multigrid.split(x, c) for c in (0, 1)]
    for c, h in enumerate(halves):
        assert h.shape == (3, 5, 3)
        expected = np.asarray(x)[:, colour == c].reshape(3, 5, 3)  # row-major: row by row, m ascending
        np.testing.assert_array_equal(np.asarray(h), expected)
    np.testing.assert_array_equal(np.asarray(multigrid.merge(halves)), np.asarray(x))


def _with_colours_together(level):
    """The same level smoothed in the cell layout (the checkerboard mask): the
    split factors merged back; ``halves`` dropped."""
    shape = level.diag.shape
    colour = (jnp.arange(shape[1])[:, None] + jnp.arange(shape[2])[None, :]) % 2
    return dataclasses.replace(
        level,
        lower=multigrid.merge(level.lower),
        cprime=multigrid.merge(level.cprime),
        inv_denom=multigrid.merge(level.inv_denom),
        color=jnp.broadcast_to(colour[None], shape),
        halves=None,
    )


@pytest.mark.parametrize("dense", [True, False])
def test_the_v_cycle_with_the_colours_apart_equals_the_cell_layout(dense):
    """Levels whose last axis is even are smoothed with the two colours in
    separate arrays, with the residual of the colour solved last taken as zero
    (its lines were just solved exactly). The same hierarchy smoothed in the
    cell layout gives the same V-cycle to round-off, and one half-sweep leaves
    the other colour untouched and zeroes the residual on its own."""
    shape = (6, 8, 12)
    op = _conductances(shape, F64, seed=10)
    # dense=False: the 3 x 4 x 6 coarsest level (even last axis) is smoothed, not solved
    cfg = linsolve.MultigridConfig(
        line_axis=0, coarse_size=72, dense_limit=None if dense else 0, coarse_sweeps=3, mixed_precision=False
    )
    hier = jax.jit(lambda op: linsolve.multigrid_setup(op, cfg))(op)
    assert all(level.halves is not None for level in hier.levels)
    assert (hier.coarse is None) != dense
    together = dataclasses.replace(hier, levels=tuple(_with_colours_together(lv) for lv in hier.levels))
    r = jnp.asarray(np.random.default_rng(11).standard_normal(shape))
    cycle = jax.jit(lambda h, r: multigrid.v_cycle(h, cfg.cycle(), r))
    apart, cells = (cycle(h, r) for h in (hier, together))
    scale = float(jnp.max(jnp.abs(cells)))
    np.testing.assert_allclose(np.asarray(apart), np.asarray(cells), rtol=0, atol=1e-12 * scale)

    level = hier.levels[0]
    x0 = jnp.asarray(np.random.default_rng(12).standard_normal(shape))
    x1 = jax.jit(lambda level, x0, r: multigrid.smooth(level, x0, r, (0,), "scan"))(level, x0, r)
    colour = np.broadcast_to((np.arange(8)[:, None] + np.arange(12)[None, :]) % 2, shape)
    np.testing.assert_array_equal(np.asarray(x1)[colour == 1], np.asarray(x0)[colour == 1])
    res = np.asarray(r - multigrid.apply(level, x1))
    assert np.max(np.abs(res[colour == 0])) < 1e-12 * np.max(np.abs(res))


def _line_operator(shape, dtype, flow, seed):
    """Advection-diffusion links along axis 0 only (none across): every column
    of cells is an independent tridiagonal system, non-symmetric with
    ``flow``; the diffusion spans three decades along each line."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    gx = 10.0 ** rng.uniform(-1.5, 1.5, (nx + 1, ny, nz))
    zy, zz = np.zeros((nx, ny + 1, nz)), np.zeros((nx, ny, nz + 1))
    c = rng.uniform(0.0, 0.05, shape)  # a weak sink: lines far from diagonally dominant
    g = Conductances(*(jnp.asarray(a, dtype) for a in (gx, zy, zz)), c=jnp.asarray(c, dtype))
    fx = jnp.asarray(np.full((nx + 1, ny, nz), flow), dtype)
    return advdiff.AdvectionDiffusion(g, fx, jnp.asarray(zy, dtype), jnp.asarray(zz, dtype))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("shape", [(1, 3, 2), (7, 3, 2), (33, 4, 3), (128, 2, 2)])
def test_parallel_and_scan_line_solves_give_the_exact_line_solution(shape, dtype):
    """multigrid's line factorisation and solve, as a scan and as a parallel
    prefix: with no links across the lines, one red-black half-sweep pair is
    the exact solution of every line's (non-symmetric) tridiagonal system;
    both forms match a dense solve, and their factors match each other."""
    ad = _line_operator(shape, dtype, flow=0.8, seed=sum(shape))
    b = jnp.asarray(np.random.default_rng(7).standard_normal(shape), dtype)
    ref = _dense_solution(advdiff.apply, jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), ad), b.astype(F64))
    out = {}
    for method in ("scan", "parallel"):
        cfg = advdiff.KrylovConfig(line_axis=0, line_solver=method)

        @jax.jit
        def run(ad, b, cfg=cfg, method=method):
            level = advdiff.multigrid_setup(ad, cfg).levels[0]
            x = multigrid.smooth(level, jnp.zeros_like(b), b, (0, 1), method)
            return x, level.cprime, level.inv_denom

        out[method] = run(ad, b)
    rtol = 2e-4 if dtype == jnp.float32 else 1e-11
    for method, (x, _, _) in out.items():
        err = np.max(np.abs(np.asarray(x, np.float64) - ref)) / np.max(np.abs(ref))
        assert err < rtol, (method, err)
    scan_factors, parallel_factors = (jax.tree_util.tree_leaves(out[m][1:]) for m in ("scan", "parallel"))
    for a, b_ in zip(scan_factors, parallel_factors, strict=True):
        np.testing.assert_allclose(np.asarray(b_), np.asarray(a), rtol=rtol, atol=rtol * float(jnp.max(jnp.abs(a))))


def test_parallel_line_solve_under_vmap_equals_one_at_a_time():
    shape = (24, 3, 2)
    ad = _line_operator(shape, F64, flow=-0.5, seed=11)
    bs = jnp.asarray(np.random.default_rng(12).standard_normal((3,) + shape))
    cfg = advdiff.KrylovConfig(line_axis=0, line_solver="parallel")
    level = jax.jit(lambda ad: advdiff.multigrid_setup(ad, cfg))(ad).levels[0]
    one = jax.jit(lambda b: multigrid.smooth(level, jnp.zeros_like(b), b, (0, 1), "parallel"))
    batched = jax.jit(jax.vmap(one))(bs)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(one(bs[i])), rtol=1e-13, atol=1e-13)


@pytest.mark.slow  # an option's equivalence to the default, 20-30 s of compilation: CI's slow suite
def test_the_line_solver_choice_changes_no_multigrid_answer():
    """The symmetric and the non-symmetric multigrid-preconditioned solves
    with the parallel line solves: the same answers (to the tolerance) in the
    same number of Krylov iterations (give or take one) as with the scan, and
    "auto" on the CPU is the scan, bit for bit."""
    dtype = F64
    shape = (16, 8, 6)
    op = _conductances(shape, dtype)
    b = jnp.asarray(np.random.default_rng(4).standard_normal(shape), dtype)
    fx = jnp.full((shape[0] + 1, shape[1], shape[2]), 0.7, dtype)
    ad = advdiff.AdvectionDiffusion(op, fx, jnp.zeros((16, 9, 6), dtype), jnp.zeros((16, 8, 7), dtype))
    tol = 1e-10
    res = {}
    for method in ("auto", "scan", "parallel"):
        mg = linsolve.MultigridConfig(tol=tol, line_axis=2, coarse_size=16, dense_limit=16, line_solver=method)
        kc = advdiff.KrylovConfig(tol=tol, line_axis=0, coarse_size=16, line_solver=method)
        res[method] = jax.jit(lambda op, ad, b, mg=mg, kc=kc: (linsolve.solve(op, b, mg), advdiff.solve(ad, b, kc)))(
            op, ad, b
        )
    if jax.default_backend() == "cpu":
        for x, y in zip(jax.tree_util.tree_leaves(res["auto"]), jax.tree_util.tree_leaves(res["scan"]), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # NaN-padded histories compare equal
    for k in range(2):
        (xs, is_), (xp, ip) = res["scan"][k], res["parallel"][k]
        assert bool(is_.converged) and bool(ip.converged)
        assert abs(int(is_.iterations) - int(ip.iterations)) <= 1
        np.testing.assert_allclose(np.asarray(xp), np.asarray(xs), atol=50 * tol * float(jnp.max(jnp.abs(xs))))


def test_a_line_solver_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="line_solver"):
        multigrid.CycleConfig(line_solver="thomas")


def test_no_private_names_are_imported_across_kernel_modules():
    """`from .x import _y` nowhere in kernels/fv and kernels/solvers, and no
    `module._name` use of another module's private names there."""
    bad = []
    for path in list((KERNELS / "fv").glob("*.py")) + list((KERNELS / "solvers").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                bad += [
                    f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_") and a.name != "__future__"
                ]
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if (
                    node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and node.value.id
                    in {
                        "advdiff",
                        "linsolve",
                        "krylov",
                        "multigrid",
                        "porous",
                        "energy",
                        "flow",
                        "conduction",
                        "roots",
                    }
                ):
                    bad.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert not bad, bad
