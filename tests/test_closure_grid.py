"""Closure grids: a closure table of several unit cells (channel widths x fin
thicknesses) and its interpolation (:func:`kernels.fv.porous.closure_lookup`).

* the splines (log value over log width and log thickness) are scipy's
  natural cubic splines (an independent code) to rounding, exact at the calibrated cells, with
  continuous derivatives (reverse mode equals central differences at a
  cell), linear in Re as ``np.interp``; float32 and vmap;
* grid tables are read back as written, and malformed ones are refused
  naming the line or the cell;
* a compact plate with a grid table solves as with the table of the cell it
  sits on, and refuses fins or optimize bounds outside the grid (exit 2,
  naming the key);
* a calibration case's grid keys are checked;
* a grid releases each unit cell's compiled program before the next (slow):
  the process's memory maps stay bounded, where twenty programs kept alive
  ran out of Linux's 65,530 and crashed the bundled 20-cell case.
"""

import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from aidc_thermo.io.case import CaseError, CaseFile
from aidc_thermo.kernels import porous
from aidc_thermo.models.calibrate import (
    ClosureTable,
    ClosureTableError,
    read_closure_table,
    write_closure_table,
)
from tests._first_gpu_plate import first_gpu_plate

CASES = Path(__file__).resolve().parents[1] / "cases"
WIDTHS = np.array([0.1e-3, 0.2e-3, 0.3e-3, 0.5e-3])
THICKNESSES = np.array([0.05e-3, 0.1e-3, 0.2e-3])
RE = np.array([5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 240.0])


def _values(scale=1.0):
    """A smooth, non-polynomial field over (width, thickness, Re) of the
    magnitude of Nu."""
    w, t, re = np.meshgrid(WIDTHS * 1e3, THICKNESSES * 1e3, RE, indexing="ij")
    return scale * (4.0 + np.sin(3 * w) + 0.5 * np.log1p(t * 10) + 0.3 * np.log(re) * w)


def _scipy_lookup(re, w, t, values):
    """The same interpolation with numpy and scipy: np.interp in Re per cell,
    then natural cubic splines of log value over log width, then over log thickness."""
    at_re = np.array([[np.interp(re, RE, values[i, j]) for j in range(len(THICKNESSES))] for i in range(len(WIDTHS))])
    along_w = CubicSpline(np.log(WIDTHS), np.log(at_re), axis=0, bc_type="natural")(np.log(w))
    return float(np.exp(CubicSpline(np.log(THICKNESSES), along_w, bc_type="natural")(np.log(t))))


def test_closure_lookup_is_scipys_natural_splines_and_exact_at_the_cells():
    import jax.numpy as jnp

    fre, nu = _values(5.0), _values()
    rng = np.random.default_rng(3)
    points = [(RE[k], WIDTHS[k // 3], THICKNESSES[k // 3]) for k in (0, 2, 6)]
    points += [
        (rng.uniform(5, 240), rng.uniform(WIDTHS[0], WIDTHS[-1]), rng.uniform(THICKNESSES[0], THICKNESSES[-1]))
        for _ in range(12)
    ]
    for re, w, t in points:
        f, n = porous.closure_lookup(re, w, t, RE, WIDTHS, THICKNESSES, jnp.asarray(fre), jnp.asarray(nu))
        assert float(f) == pytest.approx(_scipy_lookup(re, w, t, fre), rel=1e-12)
        assert float(n) == pytest.approx(_scipy_lookup(re, w, t, nu), rel=1e-12)
    # at a calibrated cell and Reynolds number: that cell's value, to rounding
    f, n = porous.closure_lookup(RE[3], WIDTHS[2], THICKNESSES[0], RE, WIDTHS, THICKNESSES, fre, nu)
    assert float(n) == pytest.approx(nu[2, 0, 3], rel=1e-14) and float(f) == pytest.approx(fre[2, 0, 3], rel=1e-14)
    # Re outside the table: held at the end values, as np.interp
    f, n = porous.closure_lookup(2.0, WIDTHS[1], THICKNESSES[1], RE, WIDTHS, THICKNESSES, fre, nu)
    assert float(n) == pytest.approx(nu[1, 1, 0], rel=1e-14)
    # a table of one cell: the values of that cell at any geometry
    one = nu[1:2, 1:2]
    _, n = porous.closure_lookup(30.0, 0.37e-3, 0.08e-3, RE, WIDTHS[1:2], THICKNESSES[1:2], one, one)
    assert float(n) == pytest.approx(np.interp(30.0, RE, nu[1, 1]), rel=1e-14)


def test_closure_lookup_derivatives_are_continuous_across_cells_in_float64_and_float32():
    import jax
    import jax.numpy as jnp

    fre, nu = _values(5.0), _values()

    def nu_at(x):  # x = (Re, width, thickness)
        return porous.closure_lookup(x[0], x[1], x[2], RE, WIDTHS, THICKNESSES, fre, nu)[1]

    x0 = np.array([30.0, WIDTHS[1], THICKNESSES[1]])  # on a cell in width and thickness, between Reynolds numbers
    grad = np.asarray(jax.jit(jax.grad(nu_at))(jnp.asarray(x0)))
    for i, h in ((1, 1e-9), (2, 1e-9), (0, 1e-4)):
        e = np.zeros(3)
        e[i] = h
        fd = (float(nu_at(jnp.asarray(x0 + e))) - float(nu_at(jnp.asarray(x0 - e)))) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-6), i
        left, right = (np.asarray(jax.grad(nu_at)(jnp.asarray(x0 + s * e * 1e-3))) for s in (-1, 1))
        assert left[i] == pytest.approx(right[i], rel=1e-6), i  # no kink at the cell
    assert abs(grad[1]) > 0 and abs(grad[2]) > 0
    # float32 and a batch of designs
    xs = jnp.asarray(np.stack([x0, [100.0, 0.42e-3, 0.07e-3]]), jnp.float32)
    out = jax.vmap(
        lambda x: porous.closure_lookup(
            x[0], x[1], x[2], RE, WIDTHS, THICKNESSES, jnp.asarray(fre, jnp.float32), jnp.asarray(nu, jnp.float32)
        )[1]
    )(xs)
    assert out.dtype == jnp.float32
    want = [_scipy_lookup(*np.asarray(x, np.float64), nu) for x in xs]
    np.testing.assert_allclose(np.asarray(out), want, rtol=2e-5)


def _grid_table(nu=None, cells=None, res=None):
    """A grid ClosureTable of WIDTHS x THICKNESSES (or ``cells``) at RE, Nu from ``nu`` (nw, nt, n)."""
    nu = _values() if nu is None else nu
    cells = cells or [(i, j) for i in range(len(WIDTHS)) for j in range(len(THICKNESSES))]
    res = RE if res is None else res
    cols = {k: [] for k in ("channel_width", "fin_thickness", "Re", "fRe_apparent", "Nu_apparent")}
    for i, j in cells:
        cols["channel_width"] += [WIDTHS[i]] * len(res)
        cols["fin_thickness"] += [THICKNESSES[j]] * len(res)
        cols["Re"] += list(res)
        cols["fRe_apparent"] += [22.0] * len(res)
        cols["Nu_apparent"] += list(nu[i, j, : len(res)])
    meta = {"fin_height": 3e-3, "base_thickness": 2e-3, "length": 33e-3, "fin_conductivity": 393.0, "prandtl": 13.0}
    return ClosureTable({k: np.asarray(v) for k, v in cols.items()}, meta)


def test_grid_table_reads_back_as_written_and_malformed_grids_are_refused(tmp_path):
    path = tmp_path / "grid.csv"
    write_closure_table(path, _grid_table(), "test grid")
    t = read_closure_table(path)
    assert t.is_grid and "channel_width" not in t.meta
    re, widths, thicknesses, fre, nu = t.arrays()
    np.testing.assert_array_equal(re, RE)
    np.testing.assert_allclose(widths, WIDTHS, rtol=1e-9)
    np.testing.assert_allclose(thicknesses, THICKNESSES, rtol=1e-9)
    np.testing.assert_allclose(nu, _values(), rtol=1e-9)
    assert fre.shape == nu.shape == (4, 3, 7)

    def refused(table, match, edit=None):
        p = tmp_path / "bad.csv"
        write_closure_table(p, table)
        if edit:
            p.write_text(edit(p.read_text()))
        with pytest.raises(ClosureTableError, match=match) as err:
            read_closure_table(p)
        assert str(p) in str(err.value)

    all_cells = [(i, j) for i in range(4) for j in range(3)]
    refused(_grid_table(cells=all_cells[:-1]), r"no rows for channel_width 0\.5 mm with fin_thickness 0\.2 mm")
    split = all_cells[:5] + [all_cells[0]] + all_cells[5:]
    refused(_grid_table(cells=split), r"channel_width 0\.1 mm, fin_thickness 0\.05 mm.*rows are split")
    mixed = _grid_table()
    mixed.columns["Re"][7:14] *= 1.01
    refused(mixed, r"fin_thickness 0\.1 mm \(line \d+\): Re .* differ from the first cell's")
    refused(_grid_table(), r"column 'fin_thickness'", edit=lambda s: s.replace("fin_thickness,", "thickness,", 1))
    refused(_grid_table(), r"missing the header line '# length", edit=lambda s: s.replace("# length", "# len", 1))


def _plate(tmp_path, closures, optimize="", cells=(12, 12), width="0.2 mm"):
    text = first_gpu_plate().replace("cells = [48, 48]", f"cells = [{cells[0]}, {cells[1]}]", 1)
    text = text.replace('nusselt = "H1"', f'closures = "{closures}"', 1)
    text = text.replace('channel_width = "0.2 mm"', f'channel_width = "{width}"', 1)
    text = text.replace('flow_range = ["1 L/min", "6 L/min"]', 'flow_range = ["1.5 L/min", "4 L/min"]', 1)
    text = text.replace("curve_points = 11", "curve_points = 2", 1) + optimize
    path = tmp_path / "plate.toml"
    path.write_text(text)
    return CaseFile(path, text, tomllib.loads(text))


@pytest.mark.slow
def test_compact_plate_on_a_grid_table_solves_as_on_its_cells_table_and_refuses_leaving_the_grid(tmp_path):
    """The plate sits on the cell (0.2 mm, 0.1 mm) of a grid whose Nu varies over the cells: its solve equals the
    solve with that cell's table alone to 1e-10; between cells (0.25 mm) it lies between the plates whose Nu
    is that of either neighbour at every width. Widths or optimize bounds outside the grid, or a single-width
    table with width bounds, exit 2 naming the key."""
    import jax

    from aidc_thermo.models import compact

    grid = tmp_path / "grid.csv"
    write_closure_table(grid, _grid_table())

    def cell_table(i, j):
        t = _grid_table(cells=[(i, j)])
        cols = {k: v for k, v in t.columns.items() if k not in ("channel_width", "fin_thickness")}
        p = tmp_path / f"cell_{i}_{j}.csv"
        meta = {**t.meta, "channel_width": WIDTHS[i], "fin_thickness": THICKNESSES[j]}
        write_closure_table(p, ClosureTable(cols, meta))
        return p

    def r_max(case_file):
        case = compact.parse(case_file)
        static, params = compact.build(case, curves=False)
        sol = jax.jit(compact.solve, static_argnums=0)(static, params)
        rep = compact.report(static, params, sol)
        assert bool(rep["converged"].value)
        return float(rep["R_max"].value)

    on_grid = r_max(_plate(tmp_path, grid))
    alone = r_max(_plate(tmp_path, cell_table(1, 1)))
    assert on_grid == pytest.approx(alone, rel=1e-10)
    between = r_max(_plate(tmp_path, grid, width="0.25 mm"))
    def flat_grid(i):  # every width with the Nu of width i
        p = tmp_path / f"flat_{i}.csv"
        write_closure_table(p, _grid_table(nu=np.repeat(_values()[i : i + 1], len(WIDTHS), axis=0)))
        return p

    lo, hi = sorted(r_max(_plate(tmp_path, flat_grid(i), width="0.25 mm")) for i in (1, 2))
    assert lo < between < hi and min(between - lo, hi - between) > 1e-3 * between

    with pytest.raises(CaseError, match=r"fins\.closures.*channel_width 0\.1\.\.0\.5 mm, the fins have 0\.6 mm"):
        compact.parse(_plate(tmp_path, grid, width="0.6 mm"))
    opt = '\n[optimize]\npressure_drop_limit = "20 kPa"\nchannel_width = ["0.15 mm", "0.6 mm"]\n'
    with pytest.raises(CaseError, match=r"optimize\.channel_width.*leaves the closure table's calibrated 0\.1\.\.0\.5"):
        compact.parse(_plate(tmp_path, grid, optimize=opt))
    opt = '\n[optimize]\npressure_drop_limit = "20 kPa"\nchannel_width = ["0.15 mm", "0.3 mm"]\n'
    assert compact.parse(_plate(tmp_path, grid, optimize=opt)).optimize.channel_width == pytest.approx((1.5e-4, 3e-4))
    with pytest.raises(CaseError, match=r"optimize\.channel_width.*calibrated for one channel width"):
        compact.parse(_plate(tmp_path, cell_table(1, 1), optimize=opt))
    opt += 'flow = ["1 L/min", "40 L/min"]\n'
    with pytest.raises(CaseError, match=r"optimize\.channel_width.*channel Reynolds number spans"):
        compact.parse(_plate(tmp_path, grid, optimize=opt))


def test_calibration_grid_keys_are_checked(tmp_path):
    from aidc_thermo.models import calibrate

    lines = (CASES / "calibration_gpu_unit_cell.toml").read_text().splitlines()
    base = "\n".join(line for line in lines if not line.startswith(("channel_widths", "fin_thicknesses")))

    def parse(extra):
        text = base.replace("[calibration]\n", f"[calibration]\n{extra}\n", 1)
        return calibrate.parse(CaseFile(tmp_path / "cal.toml", text, tomllib.loads(text)))

    assert parse("").grid == ()
    case = parse('channel_widths = ["0.1 mm", "0.2 mm"]\nfin_thicknesses = ["0.1 mm", "0.2 mm"]')
    np.testing.assert_allclose(case.grid, [(1e-4, 1e-4), (1e-4, 2e-4), (2e-4, 1e-4), (2e-4, 2e-4)], rtol=1e-12)
    with pytest.raises(CaseError, match=r"calibration\.channel_widths.*must include the \[geometry\] channel_width"):
        parse('channel_widths = ["0.1 mm", "0.3 mm"]')
    with pytest.raises(CaseError, match=r"calibration\.fin_thicknesses.*increasing"):
        parse('fin_thicknesses = ["0.2 mm", "0.1 mm"]')


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="counts the memory maps of /proc (Linux)")
def test_a_calibration_grid_releases_each_cells_program(tmp_path, monkeypatch):
    """Three unit cells (the [geometry] cell and two more) on a coarse mesh: the process holds as many memory
    maps after the third cell's solve as after the first (one program here holds about 2,200; they grew by
    that much per cell before the release)."""
    from aidc_thermo.models import calibrate

    lines = (CASES / "calibration_gpu_unit_cell.toml").read_text().splitlines()
    keep = ("channel_widths", "fin_thicknesses", "reynolds", "  channel =", "  fin_height =", "  length =")
    text = "\n".join(line for line in lines if not line.startswith(keep))
    text = text.replace("  fin = 4", "  channel = 4\n  fin = 2\n  fin_height = 8\n  length = 8", 1)
    grid = 'reynolds = [20, 80]\nchannel_widths = ["0.1 mm", "0.2 mm", "0.3 mm"]\nfin_thicknesses = ["0.1 mm"]'
    text = text.replace("[calibration]\n", f"[calibration]\n{grid}\n", 1)
    case = calibrate.parse(CaseFile(tmp_path / "cal.toml", text, tomllib.loads(text)))
    maps = []
    solve = calibrate._host_solve

    def counted(cell):
        out = solve(cell)
        maps.append(len(Path("/proc/self/maps").read_text().splitlines()))
        return out

    monkeypatch.setattr(calibrate, "_host_solve", counted)
    table, _ = calibrate.calibrate(case)
    assert len(maps) == 3
    np.testing.assert_allclose(np.unique(table.columns["channel_width"]), [1e-4, 2e-4, 3e-4], rtol=1e-12)
    assert max(maps) - maps[0] < 600, maps
