"""Voxel geometry builders: walls on cell faces, exact volumes where the
geometry is rectilinear, pin areas to the voxel resolution."""

import numpy as np
import pytest

from aidc_thermo.models import geometry as geo


def _volumes(g):
    d = [np.diff(f) for f in g.faces]
    return d[0][:, None, None] * d[1][None, :, None] * d[2][None, None, :]


def test_straight_fins_volumes_are_exact():
    g = geo.straight_fins(
        channel_width=0.3e-3,
        fin_thickness=0.2e-3,
        fin_height=2e-3,
        base_thickness=1e-3,
        length=10e-3,
        channels=5,
        plenum_length=2e-3,
        cover_thickness=0.5e-3,
    )
    vol = _volumes(g)
    width = 5 * 0.3e-3 + 6 * 0.2e-3
    assert g.faces[1][-1] == pytest.approx(width)
    assert vol[g.material == geo.FIN].sum() == pytest.approx(6 * 0.2e-3 * 2e-3 * 10e-3, rel=1e-12)
    assert vol[g.material == geo.BASE].sum() == pytest.approx(width * 1e-3 * 14e-3, rel=1e-12)
    fluid = vol[g.material == geo.FLUID].sum()
    assert fluid == pytest.approx((5 * 0.3e-3 * 10e-3 + 2 * 2e-3 * width) * 2e-3, rel=1e-12)
    assert g.fin_field == pytest.approx((2e-3, 12e-3)) and g.fin_top == pytest.approx(3e-3)
    # plena are open: no fin cells upstream of the fin field
    xc = g.centers(0)
    assert not np.any(g.material[xc < 2e-3] == geo.FIN)


def test_unit_cell_is_symmetric_half_fins():
    g = geo.straight_fins(
        channel_width=0.3e-3, fin_thickness=0.2e-3, fin_height=2e-3, base_thickness=1e-3, length=10e-3, unit_cell=True
    )
    assert g.faces[1][-1] == pytest.approx(0.5e-3)
    np.testing.assert_array_equal(g.material, g.material[:, ::-1, :])


@pytest.mark.parametrize("arrangement", ["inline", "staggered"])
def test_round_pin_area_matches_geometry(arrangement):
    g = geo.pin_fins(
        diameter=1e-3,
        pitch_x=2e-3,
        pitch_y=2e-3,
        rows=6,
        columns=5,
        fin_height=2e-3,
        base_thickness=1e-3,
        arrangement=arrangement,
        cells_per_pitch=32,
    )
    d = [np.diff(f) for f in g.faces]
    area = (d[0][:, None] * d[1][None, :])[g.material[:, :, 4] == geo.FIN].sum()
    expected_pins = 6 * 5  # staggered rows hold 4 whole pins and 2 halves
    # voxels whose centre lies inside a pin: 16 cells per diameter give the area to a few per cent
    assert area == pytest.approx(expected_pins * np.pi * 0.25e-6, rel=0.04)


def test_mask_file_round_trip(tmp_path):
    mat = np.zeros((4, 3, 5), np.int8)
    mat[:, :, :2] = geo.BASE
    mat[1, 1, 2:] = geo.FIN
    np.save(tmp_path / "m.npy", mat)
    g = geo.from_mask_file(tmp_path / "m.npy", (1e-3, 1e-3, 0.5e-3))
    np.testing.assert_array_equal(g.material, mat)
    assert g.base_top == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="3D"):
        np.save(tmp_path / "bad.npy", np.zeros((3, 3)))
        geo.from_mask_file(tmp_path / "bad.npy", (1, 1, 1))


def _fins(**kw):
    return geo.straight_fins(
        channel_width=0.3e-3, fin_thickness=0.2e-3, fin_height=2e-3, base_thickness=1e-3, length=10e-3, **kw
    )


def test_grading_is_geometric_and_keeps_the_walls():
    """blockMesh semantics: one-sided parts (length, base) have last cell /
    first cell = ratio; symmetric parts (channel, fin, fin_height) have the
    middle cell = ratio x the cells at both walls. Walls stay on faces."""
    uniform = _fins(unit_cell=True, cells_channel=8, cells_fin=4, cells_fin_height=9, cells_length=10)
    g = _fins(
        unit_cell=True, cells_channel=8, cells_fin=4, cells_fin_height=9, cells_length=10,
        grading={"channel": 4.0, "fin_height": 3.0, "length": 0.25, "base": 2.0},
    )  # fmt: skip
    np.testing.assert_array_equal(g.material, uniform.material)
    for a in range(3):  # the same part boundaries
        assert g.faces[a][-1] == pytest.approx(uniform.faces[a][-1], rel=1e-14)
    dx, dy, dz = (np.diff(f) for f in g.faces)
    assert dx[-1] / dx[0] == pytest.approx(0.25) and np.all(np.diff(np.log(dx)) == pytest.approx(np.log(0.25) / 9))
    ch = dy[1:-1][g.material[0, 1:-1, 5] == geo.FLUID]
    assert len(ch) == 8 and ch[3] / ch[0] == pytest.approx(4.0) and np.allclose(ch, ch[::-1], rtol=1e-12)
    assert ch.sum() == pytest.approx(0.3e-3, rel=1e-12)
    fin_h = dz[4:13]
    assert fin_h[4] / fin_h[0] == pytest.approx(3.0) and fin_h.sum() == pytest.approx(2e-3, rel=1e-12)
    assert dz[3] / dz[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="grading"):
        _fins(unit_cell=True, grading={"cover": 2.0})


@pytest.mark.parametrize("grading", [None, {"channel": 3.0, "fin": 2.0}])
def test_half_cell_is_the_lower_half_of_the_unit_cell(grading):
    whole = _fins(unit_cell=True, cells_channel=8, cells_fin=4, grading=grading)
    half = _fins(unit_cell="half", cells_channel=8, cells_fin=4, grading=grading)
    ny = half.shape[1]
    assert 2 * ny == whole.shape[1]
    np.testing.assert_allclose(half.faces[1], whole.faces[1][: ny + 1], rtol=1e-12, atol=1e-18)
    np.testing.assert_array_equal(half.material, whole.material[:, :ny])
    assert half.faces[1][-1] == pytest.approx(0.25e-3)
