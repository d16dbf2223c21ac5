"""Geometric multigrid for 7-point operators: hierarchy setup, line smoother,
V-cycle. The one multigrid of the kernels: the symmetric conductance operators
(:mod:`kernels.solvers.linsolve`) and the advection-diffusion operators
(:mod:`kernels.fv.advdiff`) build their hierarchies here, each passing in how
its operator gives stencil coefficients and how it coarsens.

A 7-point operator at one level is given by its *stencil*::

    (A x)_P = d_P x_P - sum_axes (w_lo_P x_{P-1} + w_hi_P x_{P+1})     (x = 0 outside)

``diag`` is ``d``, ``neighbours[axis] = (w_lo, w_hi)``, each of the cell shape.

Axis order: every array of a hierarchy is in *internal* order, the line axis
first (:func:`to_internal` / :func:`from_internal` move a cell field in and
out; callers that iterate many times transpose once, not per cycle).

Structure (static: shapes, level count, coarse-solve kind; traced: values):

* Smoother: red-black line Gauss-Seidel with exact tridiagonal (Thomas) solves
  along axis 0, the columns coloured as a checkerboard of axes 1 and 2; the
  line factors are computed once per level. Two ways to run the recurrences
  along the lines (``CycleConfig.line_solver``): ``"scan"``, one step per cell
  of the line (``lax.scan``: the least arithmetic, but as many dependent steps
  as the line has cells), and ``"parallel"``, each recurrence as a parallel
  prefix (``lax.associative_scan``: two to three times the arithmetic in about
  2 log2(n) steps over whole arrays, for accelerators, where each step of a
  scan is a small kernel whose launch costs more than its arithmetic).
  ``"auto"`` picks the scan when JAX's default backend is the CPU, where it
  measured fastest (benchmarks/RESULTS.md: the parallel form is 1.2-3x slower
  there and compiles 1.5-2x longer), and the parallel form otherwise, which is
  not yet measured on an accelerator (the "line solvers" part of
  ``python -m benchmarks gpu`` times both). Both give the same factors and
  solutions to round-off (the parallel form's round-off grows faster with the
  line systems' condition number: a few times the scan's on strongly
  anisotropic float32 lines, which a smoother tolerates).
  On a level whose last axis has an even length the two colours live in
  separate arrays for the whole V-cycle visit (:func:`split`, :func:`merge`):
  a half-sweep solves only its own colour's lines and reads its neighbours
  from the other colour's array, where the cell layout solves every line and
  keeps half the answers. Measured on the unit cell's 806k-cell pressure
  system (2-core CPU, float32 V-cycle): a smoothing sweep pair on the finest
  level 6.2 -> 3.7-4.3 ms, a V-cycle 21 -> 13 ms.
* Coarsening (:func:`coarsen_factors`): the transverse axes are halved while
  even (with ``CycleConfig.axis_weights``, a transverse axis linked more than
  twice as weakly as the other waits until they are even); the line axis once
  a level has at most ``line_coarsen_columns`` columns (or its transverse
  axes cannot be halved); when no axis is even, the odd axes of at least 5
  cells are coarsened in pairs with one group of three cells at the end.
  Restriction sums the merged cells, prolongation is piecewise constant (its
  transpose). The colours are kept apart on a level whose last axis is even
  and halved (or which is the coarsest).
* Coarsest level: dense Cholesky (symmetric operators) or LU, when it has at
  most ``dense_limit`` cells (``None``: always); otherwise ``coarse_sweeps``
  symmetric smoothing sweeps.
* V-cycle: ``pre_sweeps`` half-sweep pairs in colour order (0, 1) before the
  coarse correction, ``post_sweeps`` in order (1, 0) after: symmetric for a
  symmetric operator, so a valid CG preconditioner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import dense as _dense

__all__ = [
    "LINE_SOLVERS",
    "CycleConfig",
    "Hierarchy",
    "Level",
    "apply",
    "coarse_faces",
    "coarse_weights",
    "coarsen_factors",
    "from_internal",
    "internal_axes",
    "low_high",
    "merge",
    "neighbour_sum",
    "pair_sum",
    "prolong",
    "restrict",
    "series_parallel",
    "setup",
    "shifted",
    "smooth",
    "split",
    "to_internal",
    "v_cycle",
]


#: ways to run the line factorisation and solves (:class:`CycleConfig`)
LINE_SOLVERS = ("auto", "scan", "parallel")


@dataclass(frozen=True)
class CycleConfig:
    """Static settings of a hierarchy and its V-cycle.

    Attributes:
        pre_sweeps, post_sweeps: red-black line Gauss-Seidel sweeps per level
            before and after the coarse correction.
        max_levels: upper bound on the number of levels.
        coarse_size: coarsening stops once a level has at most this many cells.
        line_coarsen_columns: the line axis is coarsened too once a level has at
            most this many columns.
        dense_limit: the coarsest level is solved densely (Cholesky when
            ``symmetric``, else LU) when it has at most this many cells;
            ``None``: always.
        coarse_sweeps: symmetric smoothing sweeps on a coarsest level too large
            for the dense solve.
        symmetric: the operator is symmetric (Cholesky at the coarsest level).
        line_solver: how the line factorisation and solves run along the lines:
            ``"scan"``, ``"parallel"`` or ``"auto"`` (see the module docstring).
        axis_weights: typical link strength per unit volume along each axis
            (internal order; on a grid of spacings ``h``, ``1 / h**2`` times the
            coefficient), or ``None``. With them a transverse axis more than
            twice as weakly linked as the other is not halved until coarsening
            has evened them out (:func:`coarsen_factors`); without them both
            are halved whenever their length is even.
    """

    pre_sweeps: int = 1
    post_sweeps: int = 1
    max_levels: int = 12
    coarse_size: int = 512
    line_coarsen_columns: int = 256
    dense_limit: int | None = 1024
    coarse_sweeps: int = 40
    symmetric: bool = True
    line_solver: str = "auto"
    axis_weights: tuple[float, float, float] | None = None

    def __post_init__(self):
        if self.line_solver not in LINE_SOLVERS:
            raise ValueError(f"CycleConfig.line_solver = {self.line_solver!r}: one of {LINE_SOLVERS}")
        w = self.axis_weights
        if w is not None:
            w = tuple(float(x) for x in w)
            if len(w) != 3 or not all(np.isfinite(x) and x > 0 for x in w):
                raise ValueError(f"CycleConfig.axis_weights = {self.axis_weights!r}: three positive numbers or None")
            object.__setattr__(self, "axis_weights", w)


# --------------------------------------------------------------------------- grid transfer


def shifted(x: jax.Array, axis: int, direction: int) -> jax.Array:
    """``x`` of the neighbour on the low (``direction=-1``) or high (``+1``) side, 0 outside."""
    n = x.shape[axis]
    zshape = list(x.shape)
    zshape[axis] = 1
    zero = jnp.zeros(zshape, x.dtype)
    if direction < 0:
        return jnp.concatenate([zero, lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
    return jnp.concatenate([lax.slice_in_dim(x, 1, n, axis=axis), zero], axis=axis)


def low_high(g: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
    """Face field -> its values on the low and the high face of every cell."""
    n = g.shape[axis]
    return lax.slice_in_dim(g, 0, n - 1, axis=axis), lax.slice_in_dim(g, 1, n, axis=axis)


def pair_sum(x: jax.Array, axis: int) -> jax.Array:
    """Sum of neighbouring pairs (0+1, 2+3, ...) along ``axis``; on an odd
    length (at least 5) the last three cells are one group (:func:`coarsen_factors`)."""
    n = x.shape[axis]
    if n % 2 == 0:
        return lax.slice_in_dim(x, 0, n, stride=2, axis=axis) + lax.slice_in_dim(x, 1, n, stride=2, axis=axis)
    head = pair_sum(lax.slice_in_dim(x, 0, n - 3, axis=axis), axis)
    tail = [lax.slice_in_dim(x, i, i + 1, axis=axis) for i in range(n - 3, n)]
    return jnp.concatenate([head, tail[0] + tail[1] + tail[2]], axis=axis)


def coarse_faces(f: jax.Array, axis: int) -> jax.Array:
    """Face field (``n + 1`` faces along ``axis``) -> its values on the coarse
    faces: every second face, and on an odd ``n`` the last face after the
    closing group of three cells."""
    nf = f.shape[axis]
    if nf % 2 == 1:
        return lax.slice_in_dim(f, 0, nf, stride=2, axis=axis)
    head = lax.slice_in_dim(f, 0, nf - 3, stride=2, axis=axis)
    return jnp.concatenate([head, lax.slice_in_dim(f, nf - 1, nf, axis=axis)], axis=axis)


def restrict(r: jax.Array, factors) -> jax.Array:
    """Fine residual -> coarse (sum over the merged cells)."""
    for t in range(3):
        if factors[t] == 2:
            r = pair_sum(r, t)
    return r


def prolong(e: jax.Array, factors, shape) -> jax.Array:
    """Coarse correction -> fine of ``shape``, piecewise constant (the
    transpose of :func:`restrict`)."""
    for t in range(3):
        if factors[t] == 2:
            fine = jnp.repeat(e, 2, axis=t)
            if shape[t] % 2 == 1:  # the last coarse cell covers three fine cells
                m = e.shape[t]
                fine = jnp.concatenate([fine, lax.slice_in_dim(e, m - 1, m, axis=t)], axis=t)
            e = fine
    return e


def coarsen_factors(shape, line_coarsen_columns: int, weights=None) -> tuple[int, int, int]:
    """Halve the transverse axes whose length is even; halve the line axis (0)
    too once a level has few columns (long line solves over few columns cost
    scan steps, not arithmetic). When no axis can be halved, the odd axes of
    at least 5 cells are coarsened in pairs with one group of three at the
    end, so that the coarsest level stays small enough for the dense solve
    (a mesh of 13 or 21 cells across would otherwise stop at a level of a
    thousand cells or more, solved by smoothing sweeps).

    ``weights`` (the level's link strength per axis, :func:`coarse_weights`):
    a transverse axis linked more than twice as weakly as the other is left
    as it is (semi-coarsening). The smoother solves lines along axis 0 only;
    across the other two it is a point smoother, which damps the error of
    the weak direction slowly, so halving both would hand the coarse level
    error it cannot represent. Halving only the strong axis makes its links
    four times weaker relative to the other's: on the unit cell's pressure
    system (z links 6x the x links) one such level took the CG iterations
    per solve from 6 to 1-2."""
    n0, n1, n2 = shape
    f1 = 2 if n1 % 2 == 0 else 1
    f2 = 2 if n2 % 2 == 0 else 1
    if weights is not None:
        strong = max(weights[1], weights[2])
        f1 = f1 if 2.0 * weights[1] >= strong else 1
        f2 = f2 if 2.0 * weights[2] >= strong else 1
    f0 = 2 if (n0 % 2 == 0 and (n1 * n2 <= line_coarsen_columns or f1 == f2 == 1)) else 1
    if (f0, f1, f2) == (1, 1, 1):
        return tuple(2 if n >= 5 else 1 for n in shape)
    return (f0, f1, f2)


def coarse_weights(weights, factors):
    """Link strengths per axis (per unit volume) after coarsening by
    ``factors``: halving axis ``t`` doubles its spacing (links four times
    weaker per unit volume than the others')."""
    if weights is None:
        return None
    return tuple(w / float(f) ** 2 for w, f in zip(weights, factors, strict=True))


def _safe_resistance(g):
    return jnp.where(g > 0, 1.0 / jnp.where(g > 0, g, 1.0), jnp.inf)


def _safe_conductance(r):
    return jnp.where(jnp.isfinite(r), 1.0 / jnp.where(jnp.isfinite(r), r, 1.0), 0.0)


def _series(r: jax.Array, axis: int) -> jax.Array:
    """Fine link resistances (``nfine + 1`` faces along ``axis``) -> coarse.

    Coarse face ``2I`` sits on fine face ``2I``; the path from the centre of
    pair ``I`` to that of pair ``I + 1`` crosses half of fine link ``2I+1``,
    all of fine link ``2I+2`` and half of fine link ``2I+3``. On an odd
    ``nfine`` the closing group of three cells has its centre in its middle
    cell: the path to it from the last pair crosses the last pair's half link
    and both whole links before the middle cell, and from it to the boundary
    the two whole links after it."""
    n = r.shape[axis]
    if n % 2 == 0:  # odd number of fine cells
        head = _series(lax.slice_in_dim(r, 0, n - 3, axis=axis), axis)  # the pairs: fine faces 0 .. n - 4
        k = head.shape[axis]
        last = lax.slice_in_dim(head, k - 1, k, axis=axis) + lax.slice_in_dim(r, n - 3, n - 2, axis=axis)
        end = lax.slice_in_dim(r, n - 2, n - 1, axis=axis) + lax.slice_in_dim(r, n - 1, n, axis=axis)
        return jnp.concatenate([lax.slice_in_dim(head, 0, k - 1, axis=axis), last, end], axis=axis)
    mid = lax.slice_in_dim(r, 2, n - 2, stride=2, axis=axis) if n > 3 else None
    odd = lax.slice_in_dim(r, 1, n, stride=2, axis=axis)  # fine faces 1, 3, ...
    lo_half = lax.slice_in_dim(odd, 0, odd.shape[axis] - 1, axis=axis)
    hi_half = lax.slice_in_dim(odd, 1, odd.shape[axis], axis=axis)
    parts = [lax.slice_in_dim(r, 0, 1, axis=axis) + 0.5 * lax.slice_in_dim(odd, 0, 1, axis=axis)]
    if mid is not None:
        parts.append(0.5 * lo_half + mid + 0.5 * hi_half)
    m = odd.shape[axis]
    parts.append(lax.slice_in_dim(r, n - 1, n, axis=axis) + 0.5 * lax.slice_in_dim(odd, m - 1, m, axis=axis))
    return jnp.concatenate(parts, axis=axis)


def _inside_groups(n_faces: int) -> np.ndarray:
    """Which of the ``n_faces`` faces along an axis lie inside a group of
    merged cells (pairs, and the closing group of three on an odd length)."""
    n = n_faces - 1
    inside = np.zeros(n_faces, bool)
    if n % 2 == 0:
        inside[1:n:2] = True
    else:
        inside[1 : n - 3 : 2] = True
        inside[n - 2 : n] = True
    return inside


def series_parallel(links, c, factors):
    """Coarsen face links ``(gx, gy, gz)`` and a cell term ``c`` by ``factors``
    (1 or 2 per axis) as a resistor network: series along each link, parallel
    across it; ``c`` is summed over the merged cells. Returns ``(links, c)``.

    A cell with no link (an isolated row ``c x = b``, such as a solid cell in
    the pressure correction) is not part of the network it is merged into: a
    zero link inside a group does not cut the group's paths (the path starts
    at the linked cell), and its ``c`` is left out of the group's sum unless
    every cell of the group is isolated. Otherwise a fluid cell merged with a
    solid one would be cut off from its neighbours on the coarse level and
    pinned by the solid cell's ``c``, and the coarse correction of the flow
    passages would be lost near every wall."""
    linked = None
    for axis, g in enumerate(links):
        lo, hi = low_high(g, axis)
        has = (lo > 0) | (hi > 0)
        linked = has if linked is None else linked | has
    new_links = []
    for axis, g in enumerate(links):
        if factors[axis] == 2:
            r = _safe_resistance(g)
            inside = _inside_groups(g.shape[axis]).reshape([-1 if t == axis else 1 for t in range(3)])
            r = jnp.where(inside & jnp.isinf(r), jnp.zeros((), r.dtype), r)
            g = _safe_conductance(_series(r, axis))
        for t in range(3):
            if t != axis and factors[t] == 2:
                g = pair_sum(g, t)
        new_links.append(g)
    zero = jnp.zeros((), c.dtype)
    coarse_linked = restrict(linked.astype(c.dtype), factors) > 0
    coarse_c = jnp.where(coarse_linked, restrict(jnp.where(linked, c, zero), factors), restrict(c, factors))
    return tuple(new_links), coarse_c


def internal_axes(line_axis: int) -> tuple[int, int, int]:
    """The user axes in internal order: the line axis first, then the others."""
    return (line_axis,) + tuple(a for a in range(3) if a != line_axis)


def to_internal(x: jax.Array, line_axis: int) -> jax.Array:
    """Cell or face field in user axis order -> internal order (``line_axis`` first)."""
    return jnp.transpose(x, internal_axes(line_axis))


def from_internal(x: jax.Array, line_axis: int) -> jax.Array:
    """Inverse of :func:`to_internal`."""
    order = internal_axes(line_axis)
    return jnp.transpose(x, [order.index(a) for a in range(3)])


# --------------------------------------------------------------------------- levels


def neighbour_sum(neighbours, x: jax.Array, axes=(0, 1, 2)) -> jax.Array:
    """``sum over axes of w_lo x_{P-1} + w_hi x_{P+1}`` (0 outside)."""
    out = jnp.zeros_like(x)
    for axis in axes:
        w_lo, w_hi = neighbours[axis]
        out = out + w_lo * shifted(x, axis, -1) + w_hi * shifted(x, axis, +1)
    return out


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Level:
    """One level in internal axis order: the operator the caller coarsened
    (``op``, any pytree), its stencil (``diag``, ``neighbours``) and its line
    systems along axis 0 factored once (Thomas: ``lower``, ``cprime``,
    ``inv_denom``).

    The smoother's layout: on a level whose last axis has an even length the
    two colours are kept apart (see :func:`split`): ``lower``, ``cprime``,
    ``inv_denom`` are pairs, one per colour, in that layout, and ``halves``
    holds per colour its transverse links ``((w_lo, w_hi) of axis 1, of axis
    2)`` and, for colour 0 only, ``(diag, upper)`` for the residual; ``color``
    is then ``None``. Otherwise ``halves`` is ``None``, the factors are of the
    cell shape and ``color`` is the 0/1 checkerboard of the columns."""

    op: object
    diag: jax.Array
    neighbours: tuple
    lower: object
    cprime: object
    inv_denom: object
    color: jax.Array | None
    halves: tuple | None


def apply(level: Level, x: jax.Array) -> jax.Array:
    """``A x`` of a level's stencil (internal order)."""
    return level.diag * x - neighbour_sum(level.neighbours, x)


def _by_platform(method: str, scan_fn, parallel_fn, *args):
    """``scan_fn(*args)`` or ``parallel_fn(*args)`` as ``method`` says; ``"auto"``:
    the scan when JAX's default backend is the CPU, else the parallel form,
    decided when the function is traced. (``lax.platform_dependent`` would
    decide at lowering, but it traces and lowers both forms of every line
    solve: measured, 0.6-1.2 s more compilation of the resolved unit cell's
    flow solver on the CPU, for a branch the CPU never runs.)"""
    if method == "auto":
        method = "scan" if jax.default_backend() == "cpu" else "parallel"
    return scan_fn(*args) if method == "scan" else parallel_fn(*args)


def _factor_scan(diag, lower, upper):
    def step(cp_prev, inp):
        d_i, l_i, u_i = inp
        inv = 1.0 / (d_i - l_i * cp_prev)
        cp = u_i * inv
        return cp, (cp, inv)

    _, (cprime, inv_denom) = lax.scan(step, jnp.zeros_like(diag[0]), (diag, lower, upper))
    return cprime, inv_denom


def _compose_fractional(first, second):
    """The linear fractional map ``second o first``, each as its 2 x 2 matrix
    ``(m00, m01, m10, m11)``, scaled by its largest entry (a map is unchanged
    by scaling; unscaled, the products of a long line overflow)."""
    a00, a01, a10, a11 = first
    b00, b01, b10, b11 = second
    c = (b00 * a00 + b01 * a10, b00 * a01 + b01 * a11, b10 * a00 + b11 * a10, b10 * a01 + b11 * a11)
    s = jnp.maximum(jnp.maximum(jnp.abs(c[0]), jnp.abs(c[1])), jnp.maximum(jnp.abs(c[2]), jnp.abs(c[3])))
    s = jnp.where(s > 0, s, jnp.ones_like(s))
    return tuple(m / s for m in c)


def _factor_parallel(diag, lower, upper):
    # c'_i = u_i / (d_i - l_i c'_{i-1}), c'_{-1} = 0, is the linear fractional map with matrix
    # [[0, u_i], [-l_i, d_i]] applied to c'_{i-1}: the prefix products of these maps, applied to 0, give every c'_i
    zero = jnp.zeros_like(diag)
    m = lax.associative_scan(_compose_fractional, (zero, upper, -lower, diag), axis=0)
    cprime = m[1] / m[3]
    return cprime, 1.0 / (diag - lower * shifted(cprime, 0, -1))


def _make_level(op, diag, neighbours, line_solver: str = "auto", split_colours: bool | None = None) -> Level:
    w_lo, w_hi = neighbours[0]
    lower = (-w_lo).at[0].set(0.0)  # row i couples to i - 1 (row 0: boundary)
    upper = (-w_hi).at[-1].set(0.0)
    shape = diag.shape
    # every line at once, then split
    cprime, inv_denom = _by_platform(line_solver, _factor_scan, _factor_parallel, diag, lower, upper)
    if split_colours is None:
        split_colours = shape[2] % 2 == 0
    if split_colours:
        halves = tuple(
            (
                tuple((split(lo, c), split(hi, c)) for lo, hi in neighbours[1:]),
                # the residual after a pre-smoothing is computed on colour 0 only (see _v_cycle_halves)
                (split(diag, c), split(upper, c)) if c == 0 else None,
            )
            for c in (0, 1)
        )
        lower, cprime, inv_denom = (tuple(split(a, c) for c in (0, 1)) for a in (lower, cprime, inv_denom))
        return Level(op, diag, tuple(neighbours), lower, cprime, inv_denom, None, halves)
    color = (jnp.arange(shape[1])[:, None] + jnp.arange(shape[2])[None, :]) % 2
    return Level(op, diag, tuple(neighbours), lower, cprime, inv_denom, jnp.broadcast_to(color[None], shape), None)


def _solve_scan(lower, cprime, inv_denom, rhs: jax.Array) -> jax.Array:
    def fwd(prev, inp):
        r_i, l_i, inv_i = inp
        dp = (r_i - l_i * prev) * inv_i
        return dp, dp

    _, dprime = lax.scan(fwd, jnp.zeros_like(rhs[0]), (rhs, lower, inv_denom))

    def bwd(nxt, inp):
        dp_i, cp_i = inp
        x = dp_i - cp_i * nxt
        return x, x

    _, x = lax.scan(bwd, jnp.zeros_like(rhs[0]), (dprime, cprime), reverse=True)
    return x


def _compose_affine(first, second):
    """``y -> a2 (a1 y + b1) + b2``: the affine map ``second o first`` as ``(a, b)``."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def _solve_parallel(lower, cprime, inv_denom, rhs: jax.Array) -> jax.Array:
    # forward: d'_i = inv_i r_i - l_i inv_i d'_{i-1}; backward: x_i = d'_i - c'_i x_{i+1}; both first-order
    # linear recurrences from 0, so each value is the constant term of a prefix composition of affine maps
    _, dprime = lax.associative_scan(_compose_affine, (-lower * inv_denom, rhs * inv_denom), axis=0)
    _, x = lax.associative_scan(_compose_affine, (-cprime, dprime), axis=0, reverse=True)
    return x


def _line_solve(lower, cprime, inv_denom, rhs: jax.Array, line_solver: str = "auto") -> jax.Array:
    """Solve the factored line systems along axis 0 for every column of ``rhs``."""
    return _by_platform(line_solver, _solve_scan, _solve_parallel, lower, cprime, inv_denom, rhs)


# --------------------------------------------------------------------------- the colours apart
#
# On a level whose last axis has an even length, the smoother keeps the two
# colours of the checkerboard in separate arrays, each of half the last axis:
# the half of colour c holds, at (i, j, m), the cell (i, j, 2 m + p) with
# p = (j + c) mod 2. A half-sweep then reads the other colour's half and
# solves only its own lines (the full layout solves every line and keeps half
# the answers). The transverse neighbours of a cell are all of the other
# colour: along axis 1 at the same m; along axis 2 at m and m - 1 (rows where
# p = 0) or m and m + 1 (p = 1). The two cells 2 m and 2 m + 1 are one of each
# colour, so halving axis 2 for the coarse level sums the two halves.


def _odd_rows(shape, c: int) -> jax.Array:
    """``p == 1`` for colour ``c``'s half of ``shape`` (broadcastable)."""
    return ((jnp.arange(shape[1]) + c) % 2 == 1)[None, :, None]


def split(x: jax.Array, c: int) -> jax.Array:
    """Colour ``c``'s half of a cell field whose last axis has an even length."""
    pairs = x.reshape(x.shape[:2] + (x.shape[2] // 2, 2))
    return jnp.where(_odd_rows(x.shape, c), pairs[..., 1], pairs[..., 0])


def merge(halves) -> jax.Array:
    """The cell field of the two colours' halves (the inverse of :func:`split`)."""
    h0, h1 = halves
    odd = _odd_rows(h0.shape, 0)
    low, high = jnp.where(odd, h1, h0), jnp.where(odd, h0, h1)
    return jnp.stack([low, high], axis=-1).reshape(h0.shape[:2] + (2 * h0.shape[2],))


def _from_other(level: Level, c: int, other: jax.Array) -> jax.Array:
    """``sum over axes 1, 2 of w_lo x_{P-1} + w_hi x_{P+1}`` on colour ``c``'s
    half: every term is a cell of the other colour's half ``other``."""
    (lo1, hi1), (lo2, hi2) = level.halves[c][0]
    odd = _odd_rows(other.shape, c)
    below = jnp.where(odd, other, shifted(other, 2, -1))
    above = jnp.where(odd, shifted(other, 2, +1), other)
    return lo1 * shifted(other, 1, -1) + hi1 * shifted(other, 1, +1) + lo2 * below + hi2 * above


def _sweep_halves(level: Level, xs, bs, colors, line_solver: str):
    xs = list(xs)
    for c in colors:
        rhs = bs[c] + _from_other(level, c, xs[1 - c])
        xs[c] = _line_solve(level.lower[c], level.cprime[c], level.inv_denom[c], rhs, line_solver)
    return tuple(xs)


def _residual_colour0(level: Level, xs, b: jax.Array) -> jax.Array:
    """``b - (A x)`` on colour 0's half (the line links are ``-lower`` and
    ``-upper``: they differ from the stencil's only where the neighbour is
    outside, which counts 0)."""
    d, upper = level.halves[0][1]
    own = xs[0]
    ax = d * own + level.lower[0] * shifted(own, 0, -1) + upper * shifted(own, 0, +1) - _from_other(level, 0, xs[1])
    return b - ax


def smooth(level: Level, x: jax.Array, b: jax.Array, colors=(0, 1), line_solver: str = "auto") -> jax.Array:
    """Red-black line Gauss-Seidel half-sweeps on ``A x = b`` in the given colour
    order; ``line_solver`` as :class:`CycleConfig`'s."""
    if level.halves is not None:
        xs = _sweep_halves(level, (split(x, 0), split(x, 1)), (split(b, 0), split(b, 1)), colors, line_solver)
        return merge(xs)
    for col in colors:
        rhs = b + neighbour_sum(level.neighbours, x, (1, 2))
        x = jnp.where(level.color == col, _line_solve(level.lower, level.cprime, level.inv_denom, rhs, line_solver), x)
    return x


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Hierarchy:
    """Levels, finest first (internal axis order), and the coarsest level's
    dense factorisation (:class:`~kernels.solvers.dense.CholeskyFactor` or
    :class:`~kernels.solvers.dense.LUFactor`), or ``None`` (smoothing sweeps)."""

    levels: tuple
    coarse: object


def setup(
    op,
    stencil: Callable,
    coarsen: Callable,
    config: CycleConfig | None = None,
) -> Hierarchy:
    """Build the hierarchy of ``op`` (a pytree in internal axis order).

    Args:
        op: the finest operator, in internal axis order.
        stencil: ``op -> (diag, neighbours)`` (see the module docstring).
        coarsen: ``(op, factors) -> coarse op`` with ``factors`` from
            :func:`coarsen_factors`.
        config: static settings.
    """
    config = config or CycleConfig()
    current = op
    levels = []
    odd = False  # coarsened in groups of three
    weights = config.axis_weights
    for _ in range(config.max_levels):
        diag, nb = stencil(current)
        f = coarsen_factors(diag.shape, config.line_coarsen_columns, weights)
        # groups of three make a weaker coarse level: only until the dense solve takes the level
        # (dense_limit; when every coarsest level is solved densely, coarse_size)
        odd_step = any(k == 2 and n % 2 == 1 for k, n in zip(f, diag.shape, strict=True))
        coarsest = (
            f == (1, 1, 1)
            or diag.size <= config.coarse_size
            or ((odd or odd_step) and diag.size <= max(config.dense_limit or 0, config.coarse_size))
        )
        # the colours are kept apart where the coarsening merges one cell of each along the last axis
        split_colours = diag.shape[2] % 2 == 0 and (coarsest or f[2] == 2)
        levels.append(_make_level(current, diag, nb, config.line_solver, split_colours))
        if coarsest:
            break
        odd = odd or odd_step
        weights = coarse_weights(weights, f)
        current = coarsen(current, f)
    last = levels[-1]
    n = last.diag.size
    coarse = None
    if config.dense_limit is None or n <= config.dense_limit:
        eye = jnp.eye(n, dtype=last.diag.dtype).reshape((n,) + last.diag.shape)
        dense = jax.vmap(lambda e: apply(last, e).reshape(-1))(eye).T
        coarse = _dense.cho_factor(dense) if config.symmetric else _dense.lu_factor(dense)
    return Hierarchy(tuple(levels), coarse)


def _coarse_solve(hier: Hierarchy, config: CycleConfig, r):
    level = hier.levels[-1]
    if hier.coarse is None and level.halves is not None:
        bs = (split(r, 0), split(r, 1))
        xs = tuple(jnp.zeros_like(b) for b in bs)
        for _ in range(config.coarse_sweeps):
            xs = _sweep_halves(level, xs, bs, (0, 1), config.line_solver)
            xs = _sweep_halves(level, xs, bs, (1, 0), config.line_solver)
        return merge(xs)
    if hier.coarse is None:
        x = jnp.zeros_like(r)
        for _ in range(config.coarse_sweeps):
            x = smooth(level, x, r, (0, 1), config.line_solver)
            x = smooth(level, x, r, (1, 0), config.line_solver)
        return x
    if config.symmetric:
        return _dense.cho_solve(hier.coarse, r.reshape(-1)).reshape(r.shape)
    return _dense.lu_solve(hier.coarse, r.reshape(-1)).reshape(r.shape)


def v_cycle(hier: Hierarchy, config: CycleConfig, r: jax.Array, depth: int = 0) -> jax.Array:
    """One V-cycle from a zero guess on ``A e = r`` (internal axis order, the
    ``config`` the hierarchy was built with): the preconditioner."""
    levels = hier.levels
    if depth == len(levels) - 1:
        return _coarse_solve(hier, config, r)
    level = levels[depth]
    coarse_shape = levels[depth + 1].diag.shape
    f = tuple(n // m for n, m in zip(level.diag.shape, coarse_shape, strict=True))
    if level.halves is not None:
        return _v_cycle_halves(hier, config, r, depth, f)
    x = jnp.zeros_like(r)
    for _ in range(config.pre_sweeps):
        x = smooth(level, x, r, (0, 1), config.line_solver)
    res = r - apply(level, x)
    x = x + prolong(v_cycle(hier, config, restrict(res, f), depth + 1), f, level.diag.shape)
    for _ in range(config.post_sweeps):
        x = smooth(level, x, r, (1, 0), config.line_solver)
    return x


def _v_cycle_halves(hier: Hierarchy, config: CycleConfig, r: jax.Array, depth: int, f) -> jax.Array:
    """:func:`v_cycle` at a level that keeps the colours apart: one split of
    ``r`` in, one merge of the correction out."""
    level = hier.levels[depth]
    assert f[2] == 2, f
    bs = (split(r, 0), split(r, 1))
    xs = tuple(jnp.zeros_like(b) for b in bs)
    for _ in range(config.pre_sweeps):
        xs = _sweep_halves(level, xs, bs, (0, 1), config.line_solver)
    # an even last axis is always halved (coarsen_factors), and the two cells merged along it are one of
    # each colour: the restriction sums the halves, and the prolongation adds the same correction to both.
    # After a pre-smoothing, colour 1's lines were just solved exactly against colour 0: its residual is zero
    res = _residual_colour0(level, xs, bs[0]) if config.pre_sweeps else bs[0] + bs[1]
    f_half = (f[0], f[1], 1)
    e = prolong(v_cycle(hier, config, restrict(res, f_half), depth + 1), f_half, bs[0].shape)
    xs = (xs[0] + e, xs[1] + e)
    for _ in range(config.post_sweeps):
        xs = _sweep_halves(level, xs, bs, (1, 0), config.line_solver)
    return merge(xs)
