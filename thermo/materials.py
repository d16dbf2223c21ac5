"""Solid materials: thermal conductivity of the layers of a package or cold plate.

Values are constant conductivities near 350 K (typical junction/lid
temperatures). Sources: Incropera et al., *Fundamentals of Heat and Mass
Transfer*, 7th ed., Table A.1 (silicon, copper, aluminium, nickel, silicon
carbide); vendor data sheets for the interface materials, whose effective
values vary widely with bond line and pressure (use the case file's
``[materials.<name>]`` table to give your own).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Material", "BUILTIN", "material_library"]


@dataclass(frozen=True)
class Material:
    name: str
    k: float  # thermal conductivity, W/m/K
    note: str = ""


BUILTIN: dict[str, Material] = {
    m.name: m
    for m in (
        Material("silicon", 124.0, "Incropera A.1: 148 W/m/K at 300 K, 98.9 at 400 K; ~124 at 350 K"),
        Material("copper", 393.0, "Incropera A.1: pure copper, 401 at 300 K, 393 at 400 K"),
        Material("aluminium", 240.0, "Incropera A.1: pure aluminium, 237 at 300 K"),
        Material("aluminium_6061", 167.0, "alloy 6061-T6 data sheets, 167 W/m/K"),
        Material("nickel", 85.0, "Incropera A.1: 90.7 at 300 K, 80.2 at 400 K"),
        Material("silicon_carbide", 370.0, "Incropera A.1 (SiC), lower for sintered grades"),
        Material("indium", 82.0, "indium solder TIM, 82 W/m/K bulk"),
        Material("solder_tim", 50.0, "metallic solder TIM, effective"),
        Material("liquid_metal", 30.0, "gallium-alloy liquid-metal TIM, effective"),
        Material("tim_grease", 5.0, "high-performance thermal grease, effective"),
        Material("tim_pad", 3.0, "gap pad, effective"),
        Material("mold_compound", 0.9, "epoxy mould compound / underfill"),
        Material("organic_substrate", 0.6, "build-up substrate, through-plane effective"),
        Material("air", 0.03, "still air (conduction only)"),
    )
}


def material_library(user: dict[str, float] | None = None) -> dict[str, Material]:
    """Built-in materials, overridden or extended by ``{name: k}`` from a case."""
    lib = dict(BUILTIN)
    for name, k in (user or {}).items():
        lib[name] = Material(name, k, "defined in the case file")
    return lib
