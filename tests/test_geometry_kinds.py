"""The registries of geometry kinds (``[geometry] kind`` of the resolved
cold plate, ``[fins] type`` of the compact plate): an unknown name exits 2
listing the registered ones; adding a kind is one registration, after which
cases of that kind parse and build; a registration with missing or unknown
pieces, or a name twice, is refused."""

from pathlib import Path

import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.models import coldplate, compact
from aidc_thermo.models.geometry import KindRegistry
from tests._first_gpu_plate import bundled_gpu_plate

CASES = Path(__file__).resolve().parents[1] / "cases"
UNIT_CELL = (CASES / "coldplate_unit_cell.toml").read_text()
COMPACT = bundled_gpu_plate()


def _check(tmp_path, text, capsys):
    case = tmp_path / "case.toml"
    case.write_text(text)
    code = main(["check", str(case)])
    return code, capsys.readouterr().err, case


def test_unknown_resolved_geometry_kind_exits_2_listing_the_registered_kinds(tmp_path, capsys):
    code, err, case = _check(tmp_path, UNIT_CELL.replace('kind = "straight_fins"', 'kind = "straight_fin"'), capsys)
    assert code == 2
    assert f"{case}: geometry.kind:" in err
    assert "'straight_fins', 'pin_fins', 'mask', 'stl'" in err and "did you mean 'straight_fins'?" in err
    assert coldplate.GEOMETRY_KINDS.names() == ("straight_fins", "pin_fins", "mask", "stl")


def test_unknown_compact_fin_type_exits_2_listing_the_registered_types(tmp_path, capsys):
    assert 'type = "straight"' in COMPACT
    code, err, case = _check(tmp_path, COMPACT.replace('type = "straight"', 'type = "wavy"'), capsys)
    assert code == 2
    assert f"{case}: fins.type:" in err and "'straight', 'pins'" in err
    assert compact.FIN_TYPES.names() == ("straight", "pins")


def test_a_new_kind_is_one_registration(tmp_path, capsys, monkeypatch):
    """A kind registered with the straight-fin reader and builder, under a new name: cases naming it parse,
    build the same voxels as straight_fins, and the refusal of unknown kinds lists it."""
    monkeypatch.setattr(coldplate.GEOMETRY_KINDS, "_kinds", dict(coldplate.GEOMETRY_KINDS._kinds))
    straight = coldplate.GEOMETRY_KINDS["straight_fins"]
    coldplate.GEOMETRY_KINDS.register("channels_again", straight.read, **straight.parts)
    from aidc_thermo.io.case import load

    case_file = tmp_path / "new.toml"
    case_file.write_text(UNIT_CELL.replace('kind = "straight_fins"', 'kind = "channels_again"'))
    new = coldplate.parse(load(case_file))
    old = coldplate.parse(load(CASES / "coldplate_unit_cell.toml"))
    assert new.geometry_kind == "channels_again" and new.geometry == old.geometry
    g_new, g_old = coldplate.build_geometry(new), coldplate.build_geometry(old)
    np.testing.assert_array_equal(g_new.material, g_old.material)
    assert coldplate._passage(new, g_new) == coldplate._passage(old, g_old)
    code, err, _ = _check(tmp_path, UNIT_CELL.replace('kind = "straight_fins"', 'kind = "ribbed"'), capsys)
    assert code == 2 and "'channels_again'" in err


def test_registration_is_checked():
    reg = KindRegistry("kind", "test kind", ("build", "size"))
    reg.register("a", lambda t: {}, build=len, size=len)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", lambda t: {}, build=len, size=len)
    with pytest.raises(ValueError, match=r"missing \['size'\]"):
        reg.register("b", lambda t: {}, build=len)
    with pytest.raises(ValueError, match=r"unknown \['colour'\]"):
        reg.register("c", lambda t: {}, build=len, size=len, colour=len)
    assert reg.names() == ("a",) and reg["a"].build is len
    with pytest.raises(AttributeError, match="no piece 'colour'"):
        reg["a"].colour  # noqa: B018


def test_fin_type_pieces_reach_parse_and_optimize(tmp_path, capsys):
    """The compact fin types' pieces at parse: pins get their friction fit (complete) and refuse thermo optimize
    with the registered reason; straight fins accept it."""
    from test_compact_case import PIN_END_FED

    from aidc_thermo.io.case import load

    case_file = tmp_path / "pins.toml"
    case_file.write_text(PIN_END_FED)
    pins = compact.parse(load(case_file))
    assert pins.fin_type == "pins" and pins.pin_r_darcy > 0 and pins.pin_beta > 0  # the fit ran
    opt = '\n[optimize]\npressure_drop_limit = "20 kPa"\n'
    code, err, case = _check(tmp_path, PIN_END_FED + opt, capsys)
    assert code == 2 and f"{case}: optimize:" in err and "this plate has pins" in err
    code, err, _ = _check(tmp_path, COMPACT + opt, capsys)
    assert code == 0, err
