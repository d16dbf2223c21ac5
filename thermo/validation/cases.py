"""The validation cases of ``thermo validate``, in report order: each runs the
shared functions of this package and states its checks (reference, measured,
tolerance). The tolerances are the tests' own."""

from __future__ import annotations

import numpy as np

from . import Case, CaseResult, Figure, check_abs, check_range, check_rel


def _converged(ok: bool, what: str = "solver converged"):
    return check_abs(what, 1.0, 1.0 if ok else 0.0, 0.0)


# ----------------------------------------------------------------------------- conduction


def composite_wall() -> CaseResult:
    from .conduction import composite_wall as run

    r = run(axis=0)
    err = float(np.max(np.abs(r["profile"] - r["exact"])))
    x_mm = r["x"] * 1e3
    return CaseResult(
        checks=[
            _converged(bool(r["info"].converged)),
            check_abs("max |T - T_exact| / T_wall", 0.0, err / r["t_wall"], 1e-9),
            check_rel("heat through the convective face", r["q_exact"], r["q_out"], 1e-10, "W"),
        ],
        figures=[
            Figure(
                "composite_wall", "profile", "Composite wall: cell temperatures against the exact series solution",
                "x (mm)", "T (degC)",
                series=[],
                lines=[("exact (series resistances)", r["x_fine"] * 1e3, r["exact_fine"])],
                points=[("computed (cell centres)", x_mm, r["profile"])],
            )
        ],
    )  # fmt: skip


def conduction_mms() -> CaseResult:
    from .conduction import mms_order

    r = mms_order()
    return CaseResult(
        checks=[
            _converged(r["converged"]),
            check_range("observed order (fitted slope)", 2.0, r["slope"], 1.9, 2.1),
            check_range("RMS error on the finest grid", 0.0, r["errors"][-1], 0.0, 1e-3, "K"),
        ],
        figures=[
            Figure(
                "conduction_mms_order", "convergence", "Manufactured solution, variable k, stretched grids",
                "h = 1/n", "RMS error", series=[("T", r["h"], r["errors"])], slopes=[r["slope"]], order=2.0,
                logx=True, logy=True,
            )
        ],
    )  # fmt: skip


# ----------------------------------------------------------------------------- energy


def advection_order() -> CaseResult:
    from .energy import ADVECTION_ORDER, advection_order

    checks, series, slopes = [], [], []
    for scheme, order in ADVECTION_ORDER.items():
        r = advection_order(scheme)
        checks.append(_converged(r["converged"], f"{scheme}: solver converged"))
        checks.append(check_abs(f"{scheme}: observed order", order, r["slope"], 0.2))
        series.append((scheme, r["h"][1:], r["errors"][1:]))  # the points the slope is fitted to
        slopes.append(r["slope"])
    return CaseResult(
        checks=checks,
        figures=[
            Figure(
                "advection_order", "convergence", "Advection-diffusion, manufactured 1D solution, 64-256 cells",
                "h = 1/n", "RMS error", series=series, slopes=slopes, order=None, logx=True, logy=True,
            )
        ],
    )  # fmt: skip


def _plates(kind: str, tol: float, spread_tol: float) -> CaseResult:
    from . import reference
    from .energy import plates_developed_nusselt

    ref = reference("parallel_plates")[f"Nu_{kind}"]
    r = plates_developed_nusselt(kind)
    lo, hi = r["window"]
    return CaseResult(
        checks=[
            _converged(r["converged"]),
            check_range("Nu spread over the developed window", 0.0, r["spread"], 0.0, spread_tol),
            check_rel(f"fully developed Nu_{kind}", ref, r["mean"], tol),
        ],
        figures=[
            Figure(
                f"plates_nu_{kind}", "profile",
                f"Parallel plates, uniform wall {'flux' if kind == 'H' else 'temperature'}: local Nu",
                "x / D_h", "Nu", series=[("computed", r["x"], r["nu"])],
                lines=[(f"Shah & London Nu_{kind} = {ref:.4f} (checked over x/D_h {lo:g}-{hi:g})",
                        np.array([0.0, r["x"][-1]]), np.array([ref, ref]))],
            )
        ],
    )  # fmt: skip


def plates_h() -> CaseResult:
    return _plates("H", 1e-3, 1e-3)


def plates_t() -> CaseResult:
    return _plates("T", 3e-3, 5e-3)


# ----------------------------------------------------------------------------- flow


def duct_friction() -> CaseResult:
    from .flow import duct_order

    r = duct_order()
    checks = [_converged(r["converged"])]
    for j, a in enumerate(r["alphas"]):
        checks.append(check_rel(f"f Re, aspect ratio {a:g}, finest grid", r["ref"][j], r["fre"][-1, j], 0.01))
    for j, a in enumerate(r["alphas"]):
        checks.append(check_range(f"order of the f Re error, aspect ratio {a:g}", 2.0, r["slopes"][j], 1.8, 2.2))
    it = r["iterations"]
    checks.append(check_range("outer iterations, finest minus coarsest", 0.0, np.max(it[-1]) - np.max(it[0]), -1e9, 3))
    return CaseResult(
        checks=checks,
        figures=[
            Figure(
                "duct_fre_order", "convergence", "Rectangular ducts: |f Re / Shah & London - 1|",
                "h (cells across the short side)^-1", "relative error",
                series=[(f"alpha = {a:g}", r["h"], r["errors"][:, j]) for j, a in enumerate(r["alphas"])],
                slopes=list(r["slopes"]), order=2.0, logx=True, logy=True,
            )
        ],
    )  # fmt: skip


def _cavity(re: int) -> CaseResult:
    from .flow import cavity

    r = cavity(re)
    gy, gu, gx, gv = r["points"]
    ok = np.isfinite(gv)
    return CaseResult(
        checks=[
            _converged(bool(r["info"].converged)),
            check_range("outer iterations", 0.0, int(r["info"].iterations), 0, 299),
            check_range("RMS difference from Ghia (lid speed)", 0.0, r["rms"], 0.0, 0.01),
            check_range("max cell volume imbalance / lid flux", 0.0, r["imbalance"], 0.0, 1e-6),
        ],
        figures=[
            Figure(
                f"cavity_re{re}_u", "profile", f"Lid-driven cavity Re = {re}: u on x = 0.5", "y", "u / U_lid",
                series=[("computed, 128 x 128", r["s"], r["u"])], points=[("Ghia, Ghia & Shin 1982", gy, gu)],
            ),
            Figure(
                f"cavity_re{re}_v", "profile", f"Lid-driven cavity Re = {re}: v on y = 0.5", "x", "v / U_lid",
                series=[("computed, 128 x 128", r["s"], r["v"])], points=[("Ghia, Ghia & Shin 1982", gx[ok], gv[ok])],
            ),
        ],
    )  # fmt: skip


def cavity_100() -> CaseResult:
    return _cavity(100)


def cavity_400() -> CaseResult:
    return _cavity(400)


# ----------------------------------------------------------------------------- resolved cold plate


def unit_cell() -> CaseResult:
    from .coldplate import developed_unit_cell

    r = developed_unit_cell()
    c = r["columns"]
    fre, nu_h1, nu_t = r["fRe"], r["Nu_H1"], r["Nu_T"]
    re = c["Re"]
    return CaseResult(
        checks=[
            check_range(f"local f Re at Re {re[0]:g} (coarse grid: up to 12 % low)", fre, c["fRe_local"][0],
                        0.88 * fre, fre),
            check_rel(f"local Nu at Re {re[0]:g} vs Nu_H1", nu_h1, c["Nu_local"][0], 0.1),
            check_range(f"local Nu at Re {re[0]:g} / Nu_T (H1, not T)", 1.15, c["Nu_local"][0] / nu_t, 1.15, np.inf),
            check_rel(f"local f Re, Re {re[1]:g} against Re {re[0]:g} (developed)", c["fRe_local"][0],
                      c["fRe_local"][1], 5e-3),
            check_rel(f"local Nu, Re {re[1]:g} against Re {re[0]:g} (developed)", c["Nu_local"][0],
                      c["Nu_local"][1], 2e-2),
        ],
        figures=[
            Figure(
                "unit_cell_closures", "profile", "Resolved straight-fin unit cell (6 x 8 cells per channel)",
                "channel Reynolds number", "f Re (Fanning), Nu",
                series=[("f Re local", re, c["fRe_local"]), ("f Re apparent", re, c["fRe_apparent"]),
                        ("Nu local", re, c["Nu_local"]), ("Nu apparent", re, c["Nu_apparent"])],
                lines=[(f"Shah & London f Re = {fre:.2f}, Nu_H1 = {nu_h1:.2f}, Nu_T = {nu_t:.2f}",
                        np.array([re[0], re[-1], np.nan, re[0], re[-1], np.nan, re[0], re[-1]]),
                        np.array([fre, fre, np.nan, nu_h1, nu_h1, np.nan, nu_t, nu_t]))],
            )
        ],
    )  # fmt: skip


# ----------------------------------------------------------------------------- compact closures


def shah_polynomials() -> CaseResult:
    from .compact import shah_polynomials as run

    r = run()
    checks = []
    tols = {"fRe": 2e-3, "Nu_H1": 3e-3, "Nu_T": 3e-3}
    for key, tol in tols.items():
        got, ref = r[key]
        for a, g, f in zip(r["alpha"], got, ref, strict=True):
            if a in (0.1,):  # the tests check the other five ratios
                continue
            checks.append(check_rel(f"{key} polynomial, aspect ratio {a:g}", f, g, tol))
    a_fine = np.linspace(0.0, 1.0, 101)
    import jax.numpy as jnp

    from aidc_thermo.kernels import porous

    return CaseResult(
        checks=checks,
        figures=[
            Figure(
                "shah_polynomials", "profile", "Closures of the compact model: Shah & London polynomials",
                "aspect ratio (short / long side)", "f Re (Fanning), Nu",
                series=[
                    ("f Re polynomial", a_fine, np.asarray(porous.shah_london_fre(jnp.asarray(a_fine)))),
                    ("Nu_T polynomial", a_fine, np.asarray(porous.shah_london_nu_t(jnp.asarray(a_fine)))),
                    ("Nu_H1 polynomial", a_fine, np.asarray(porous.shah_london_nu_h1(jnp.asarray(a_fine)))),
                ],
                points=[(f"{k} exact (Shah & London)", r["alpha"], r[k][1]) for k in ("fRe", "Nu_T", "Nu_H1")],
            )
        ],
    )  # fmt: skip


def compact_fins_dp() -> CaseResult:
    from .compact import developing_fins, end_fed_fins

    a = end_fed_fins()
    b = developing_fins()
    return CaseResult(
        checks=[
            _converged(bool(a["flow"].info.converged), "fully developed: solver converged"),
            check_rel("fully developed field: pressure drop", a["expected"], a["dp"], 1e-9, "Pa"),
            check_rel(f"developing field (x+ = {b['x_plus']:.3f}): pressure drop vs Shah apparent f",
                      b["expected"], b["dp"], 1e-9, "Pa"),
            check_range("developing / fully developed pressure drop", 1.1, b["dp"] / b["developed"], 1.1, np.inf),
        ],
    )  # fmt: skip


# ----------------------------------------------------------------------------- network


def pipes() -> CaseResult:
    from .network import laminar_pipe, turbulent_line

    a = laminar_pipe()
    b = turbulent_line()
    return CaseResult(
        checks=[
            _converged(bool(a["info"].converged), "laminar: Newton converged"),
            check_rel(f"laminar flow, Colebrook-asymptote law (Re {a['re']:.0f})", a["q_exact"], a["flow"][0],
                      1e-12, "m3/s"),
            check_rel("laminar flow, Churchill law", a["q_exact"], a["flow"][1], 1e-12, "m3/s"),
            _converged(bool(b["info"].converged), "turbulent: Newton converged"),
            check_rel(f"turbulent line dp, Darcy-Colebrook (Re {b['re']:.0f})", b["dp"], b["dp_ref"], 1e-6, "Pa"),
            check_rel("turbulent line: same flow in both pipes", b["flow"][0], b["flow"][1], 1e-13, "m3/s"),
        ],
    )  # fmt: skip


# ----------------------------------------------------------------------------- plant


def hx_effectiveness() -> CaseResult:
    import jax.numpy as jnp

    from aidc_thermo.kernels import hx

    from . import reference
    from .plant import hx_regression

    r = hx_regression()
    ref = reference("hx_regression")
    ntu = np.linspace(0.0, 8.0, 161)
    series = [(a, ntu, np.asarray(hx.effectiveness(jnp.asarray(ntu), ref["cr"], a))) for a in r]
    return CaseResult(
        checks=[check_abs(f"effectiveness, {a}, NTU 5, Cr 0.7", v, got, tol) for a, (got, v, tol) in r.items()],
        figures=[
            Figure(
                "hx_effectiveness", "profile", "Effectiveness-NTU at Cr = 0.7", "NTU", "effectiveness",
                series=series, points=[("reference (NTU 5)", np.full(3, 5.0), np.array([v for _, v, _ in r.values()]))],
            )
        ],
    )  # fmt: skip


def psychrometrics() -> CaseResult:
    from aidc_thermo.kernels import psychro

    from .plant import handbook_example_1, saturation_air, saturation_pressure

    p = saturation_pressure()
    t_fine = np.linspace(-20.0, 150.0, 171)
    p_fine = np.asarray(psychro.saturation_pressure(psychro.T0 + t_fine))
    s = saturation_air()
    e = handbook_example_1()
    checks = [check_rel(f"saturation pressure at {t:g} C", r, c, 3e-4, "Pa") for t, c, r in
              zip(p["t_degC"], p["computed"], p["ref"], strict=True)]  # fmt: skip
    got, ref = s["W"]
    checks += [check_rel(f"saturation humidity ratio at {t:g} C", r, c, 7e-3, "kg/kg")
               for t, c, r in zip(s["t_degC"], got, ref, strict=True)]  # fmt: skip
    got, ref = s["h_s"]
    checks += [check_rel(f"saturated air enthalpy at {t:g} C", r, c, 0.01, "J/kg")
               for t, c, r in zip(s["t_degC"], got, ref, strict=True)]  # fmt: skip
    checks += [
        check_abs("Example 1: humidity ratio", e["W"][1], e["W"][0], 1e-4, "kg/kg"),
        check_abs("Example 1: relative humidity", e["rh"][1], e["rh"][0], 0.005),
        check_abs("Example 1: enthalpy", e["h"][1], e["h"][0], 100.0, "J/kg"),
        check_abs("Example 1: wet bulb recovered", e["t_wb"][1], e["t_wb"][0], 1e-9, "K"),
    ]
    return CaseResult(
        checks=checks,
        figures=[
            Figure(
                "saturation_pressure", "profile", "Saturation pressure of water (over ice below 0 C)", "T (degC)",
                "p_ws (Pa)", series=[("computed", t_fine, p_fine)],
                points=[("ASHRAE 2017 Table 3", p["t_degC"], p["ref"])], logy=True,
            )
        ],
    )  # fmt: skip


def water() -> CaseResult:
    from .plant import water_properties

    r = water_properties()
    tols = {"density": 2e-4, "cp": 5e-4, "viscosity": 2e-3, "conductivity": 2e-3}
    units = {"density": "kg/m3", "cp": "J/kg/K", "viscosity": "Pa s", "conductivity": "W/m/K"}
    checks = []
    for key, tol in tols.items():
        got, ref = r[key]
        checks += [check_rel(f"{key} at {t:g} C", f, g, tol, units[key]) for t, g, f in
                   zip(r["t_degC"], got, ref, strict=True)]  # fmt: skip
    return CaseResult(checks=checks)


def doe2_chiller() -> CaseResult:
    from .plant import doe2_reference_point

    r = doe2_reference_point()
    return CaseResult(
        checks=[
            check_abs("EIRFT at the rating point", 1.0, r["eir"], 1e-3),
            check_abs("COP_ref of the curve", r["cop_ref"], r["cop_ref_kernel"], 0.0),
        ]
    )


def facility_energy() -> CaseResult:
    from .plant import chain_balances, facility_design_point

    r = facility_design_point(export_fraction=0.3)
    checks = [_converged(bool(r["info"].converged), "coupled solve converged")]
    for name, (left, right) in chain_balances(r["fac"], r["op"]).items():
        if name == "device inlet temperature":
            checks.append(check_abs(name, right, left, 1e-9, "K"))
        else:
            checks.append(check_rel(name, right, left, 1e-9, "W"))
    return CaseResult(checks=checks)


def _c(name, model, title, sources, quick, run, description):
    return Case(name, model, title, tuple(sources), quick, run, description)


CASES = [
    _c(
        "composite_wall",
        "conduction",
        "Composite wall (lid, interface, spreader)",
        ["analytic"],
        True,
        composite_wall,
        "Three layers on randomly non-uniform cells, fixed temperature on one face and convection on the other: "
        "the piecewise-linear exact profile and the series heat flux.",
    ),
    _c(
        "conduction_mms",
        "conduction",
        "Conduction: manufactured solution, order of accuracy",
        ["analytic"],
        False,
        conduction_mms,
        "Variable conductivity, stretched non-uniform grids (8, 16, 32, 64 cells a side): the fitted slope of "
        "log(error) against log(h) is the scheme's formal order 2.",
    ),
    _c(
        "advection_order",
        "energy",
        "Advection schemes: observed order",
        ["analytic"],
        False,
        advection_order,
        "Manufactured 1D advection-diffusion on stretched grids of 32-256 cells: upwind is first order, TVD second.",
    ),
    _c(
        "plates_nu_h",
        "energy",
        "Parallel plates, uniform flux: Nu_H",
        ["shah_london_1978"],
        True,
        plates_h,
        "Poiseuille flow between plates heated at uniform flux, Pe 20, 96 x 32 cells: the fully developed Nusselt "
        "number 140/17.",
    ),
    _c(
        "plates_nu_t",
        "energy",
        "Parallel plates, uniform wall temperature: Nu_T",
        ["shah_london_1978"],
        False,
        plates_t,
        "Poiseuille flow between isothermal plates, Pe 400, 160 x 32 cells: the fully developed Nusselt number 7.5407.",
    ),
    _c(
        "duct_friction",
        "flow",
        "Rectangular ducts: f Re and its order of convergence",
        ["shah_london_1978"],
        False,
        duct_friction,
        "Fully developed laminar flow in ducts of aspect ratio 1, 0.5, 0.25, 0.125 on 8, 16, 32 cells across: f Re "
        "within 1 % on the finest grid, second-order convergence.",
    ),
    _c(
        "cavity_re100",
        "flow",
        "Lid-driven cavity, Re = 100",
        ["ghia_1982"],
        False,
        cavity_100,
        "128 x 128 cells, centreline velocities against Ghia, Ghia & Shin's tabulated points.",
    ),
    _c(
        "cavity_re400",
        "flow",
        "Lid-driven cavity, Re = 400",
        ["ghia_1982"],
        False,
        cavity_400,
        "128 x 128 cells, centreline velocities against Ghia, Ghia & Shin's tabulated points.",
    ),
    _c(
        "unit_cell",
        "coldplate",
        "Resolved unit cell: fully developed f Re and Nu",
        ["shah_london_1978"],
        False,
        unit_cell,
        "The straight-fin unit cell (0.3 mm channels, 1.5 mm fins, 100 mm long, x+ >= 0.67 over the local window) "
        "solved by the resolved flow and conjugate energy kernels at Re 150 and 300, reduced by thermo calibrate: "
        "the local f Re and Nu approach the fully developed Shah & London values of the H1 condition.",
    ),
    _c(
        "shah_polynomials",
        "compact",
        "Compact closures: Shah & London polynomials",
        ["shah_london_1978", "kakac_shah_aung_1987"],
        True,
        shah_polynomials,
        "The polynomial fits the compact model uses for channel friction and Nusselt numbers, against the exact "
        "duct values.",
    ),
    _c(
        "compact_fins_dp",
        "compact",
        "Compact fin field: 1D pressure drops",
        ["kakac_shah_aung_1987"],
        True,
        compact_fins_dp,
        "End-fed straight-fin fields on stretched grids: fully developed and developing (Shah's apparent friction) "
        "pressure drops reproduced to round-off.",
    ),
    _c(
        "pipes",
        "network",
        "Pipe network: Hagen-Poiseuille and Darcy-Colebrook",
        ["analytic", "iapws"],
        True,
        pipes,
        "Laminar pipe flow at a fixed pressure difference against Hagen-Poiseuille; a rough turbulent line against "
        "Darcy-Weisbach with Colebrook solved by SciPy.",
    ),
    _c(
        "hx_effectiveness",
        "plant",
        "Heat exchangers: effectiveness-NTU",
        ["incropera_shah_sekulic"],
        True,
        hx_effectiveness,
        "Counterflow, parallel flow and unmixed crossflow at NTU = 5, Cr = 0.7.",
    ),
    _c(
        "psychrometrics",
        "plant",
        "Psychrometrics: ASHRAE tables and Example 1",
        ["ashrae_2017"],
        True,
        psychrometrics,
        "Saturation pressure (Table 3), saturation humidity ratio and enthalpy (Table 2), and the Handbook's "
        "Example 1 (40 C dry bulb, 20 C wet bulb).",
    ),
    _c(
        "water",
        "plant",
        "Water properties: IAPWS at 1 atm",
        ["iapws"],
        True,
        water,
        "Density, heat capacity, viscosity and conductivity of the water fit at 20-60 C.",
    ),
    _c(
        "doe2_chiller",
        "plant",
        "Chiller: DOE-2 reference point",
        ["doe2_centrifugal"],
        True,
        doe2_chiller,
        "The DOE-2 'Centrifugal 5.50 COP' curve gives EIRFT = 1 and COP 5.5 at its rating point.",
    ),
    _c(
        "facility_energy",
        "facility",
        "Facility chain: energy closure",
        ["energy_balance"],
        True,
        facility_energy,
        "The bundled hot-humid facility case (open tower, trim chiller, 30 % heat export) at a 33 C, 65 % design "
        "point: heat in equals heat out, and each stage closes from its own temperatures and flows.",
    ),
]
