"""``facility`` whose ``[rack] case`` is a row of racks (a ``rack_network``
with ``[row]``): one network holds every rack of the row, so every accelerator
plate of the row is one position of the hall's coupled solve; ``[rack] racks``
stays the hall's number of racks (a whole number of rows). The checks: the
worst plate sits in the rack the row's headers starve and is named with its
rack, an oversized header gives the hall of the rack alone, and a racks count
that is not whole rows is refused."""

from pathlib import Path

import numpy as np
import pytest
from test_facility_rack import hall_with_rack, rack_text

from aidc_thermo.cli import main
from aidc_thermo.io.case import load
from aidc_thermo.models import facility

N = 3  # racks in the row
PER_RACK = 4  # accelerator plates per rack (2 trays, two GPU plates in series)

#: the rack: 2 trays of two GPU plates in series, 10 L/min (5 L/min per plate, inside the curves' 1-6 L/min)
RACK = rack_text(trays=2, plates=("gpu", "gpu"), flow="10 L/min", manifold="20 mm", hose="8 mm", cv=2.0)


def row(diameter, tees="true", feed_length="2 m", feed_k=1.0, ret="direct"):
    return RACK + (f'\n[row]\nracks = {N}\nreturn = "{ret}"\ndiameter = "{diameter}"\nrack_pitch = "0.6 m"\n'
                   f'feed_length = "{feed_length}"\nfeed_k = {feed_k}\ntees = {tees}\n')  # fmt: skip


def solved(path: Path):
    case = facility.parse(load(path))
    static, params = facility.build(case)
    return case, static, params, facility.solve(static, params)


def j_per_token(sol):
    return np.asarray(sol.ops.p_facility / sol.ops.tokens_per_s)


@pytest.mark.parametrize(
    "racks, accelerators, key, fragment",
    [
        (4, None, "rack.racks", f"multiple of {N}"),
        (1, None, "rack.racks", "not a whole number of rows"),
        (6, 12, "it.accelerators", f"= {6 * PER_RACK}"),  # [it] accelerators counts the hall's, not the row's
    ],
)
def test_racks_that_are_not_whole_rows_exit_2_naming_file_and_key(tmp_path, capsys, racks, accelerators, key,
                                                                  fragment):  # fmt: skip
    (tmp_path / "row.toml").write_text(row("25 mm"))
    path = tmp_path / "hall.toml"
    path.write_text(hall_with_rack("row.toml", racks, accelerators=accelerators))
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert key in err and str(path) in err and fragment in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_row_hall_counts_every_rack_of_every_row(tmp_path):
    (tmp_path / "row.toml").write_text(row("25 mm"))
    (tmp_path / "hall.toml").write_text(hall_with_rack("row.toml", 2 * N))
    case = facility.parse(load(tmp_path / "hall.toml"))
    link = case.rack
    assert (link.racks, link.row_racks, link.rows, len(link.accelerators)) == (2 * N, N, 2, PER_RACK)
    assert case.params["n_accelerators"] == 2 * N * PER_RACK
    # the flow per accelerator is the rack's, as for the rack alone
    assert case.params["flow_per_accelerator"] == pytest.approx(10 / 6e4 / PER_RACK, rel=1e-12)
    assert any(f"2 identical row(s) of {N} racks" in n for n in case.notes)


@pytest.mark.slow  # three halls compiled and solved: about 90 s on a shared 2-core machine
def test_worst_plate_is_in_the_starved_rack_and_an_oversized_header_is_the_rack_alone(tmp_path):
    (tmp_path / "rack.toml").write_text(RACK)
    (tmp_path / "small.toml").write_text(row("22 mm"))  # ~1.3 m/s in the header at the CDU: maldistributed
    # a 1 m header with no tees and no feed loss: the racks see the rack alone's hydraulics
    (tmp_path / "large.toml").write_text(row("1 m", tees="false", feed_length="0 m", feed_k=0.0))
    for name in ("rack", "small", "large"):
        (tmp_path / f"hall_{name}.toml").write_text(hall_with_rack(f"{name}.toml", N))
    alone = solved(tmp_path / "hall_rack.toml")[-1]
    case, static, params, small = solved(tmp_path / "hall_small.toml")
    large = solved(tmp_path / "hall_large.toml")[-1]
    for sol in (alone, small, large):
        assert bool(np.all(sol.info.converged))
    assert np.asarray(small.t_plates).shape[-1] == N * PER_RACK  # every plate of the row is in the coupled solve

    # (1) the rack the undersized header starves holds the worst plate, and its label names that rack
    q = np.asarray(small.rack.plate_flow).reshape(N, PER_RACK)
    starved = int(np.argmin(q.mean(axis=-1)))
    assert q.mean(axis=-1).max() / q.mean(axis=-1).min() > 1.01, q  # the maldistribution is there
    assert starved == N - 1  # direct return: the far end of the row
    r = {k: np.asarray(o.value) for k, o in facility.report(static, params, small).items()}
    label = facility._summary(case, r, static)["worst_plate"].value  # as summary.json writes it
    assert label.startswith(f"rack {starved} "), label
    t = np.asarray(small.t_plates).max(axis=0).reshape(N, PER_RACK)
    assert np.unravel_index(np.argmax(t), t.shape)[0] == starved
    assert static.rack.labels[static.rack.accelerators[int(np.argmax(t))]] == label
    # the starved rack runs hotter than the rack alone at its design flow, and its hottest plate sets the clock
    assert t.max() > np.asarray(alone.t_plates).max() + 0.01
    np.testing.assert_allclose(np.asarray(small.ops.t_j), np.asarray(small.t_plates).max(axis=-1), rtol=1e-12)

    # (2) oversized header: the hall of the row equals the hall of N racks alone
    np.testing.assert_allclose(j_per_token(large), j_per_token(alone), rtol=1e-8)
    t_large = np.asarray(large.t_plates).reshape(-1, N, PER_RACK)
    np.testing.assert_allclose(t_large, np.repeat(np.asarray(alone.t_plates)[:, None], N, axis=1), atol=1e-6)
    np.testing.assert_allclose(np.asarray(large.ops.p_pump_tcs), np.asarray(alone.ops.p_pump_tcs), rtol=1e-8)
