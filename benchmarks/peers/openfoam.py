"""OpenFOAM peer of the ``resolved_coldplate`` case type (straight fins).

:func:`write_case` turns one of our parsed straight-fin cases
(:func:`thermo.models.coldplate.parse`) into a complete OpenFOAM (ESI v1912, Debian
package ``openfoam``) case for ``chtMultiRegionSimpleFoam``; :func:`run_case`
runs ``blockMesh``, ``splitMeshRegions -cellZones -overwrite`` and the solver,
times the mesh steps and the solve separately (wall time), reads the ASCII
fields back and computes the quantities of ``thermo.models.coldplate.run`` the same
way (pressure drop, R_max, R_mean, outlet bulk temperature).

Mesh: one ``blockMesh`` block per box of uniform spacing and material of our
voxel grid (:func:`thermo.models.geometry.straight_fins`), with the same cell counts,
so the two meshes match cell for cell; the blocks carry the cell zones
``fluid`` and ``solid`` that ``splitMeshRegions`` turns into the two regions
(interface patches ``fluid_to_solid`` / ``solid_to_fluid``).

Physics as ours: laminar, constant properties of the coolant at the inlet
temperature (:mod:`thermo.coolant`), constant solid conductivity; density
from ``rhoConst`` and ``hConst`` so the compressible solver is incompressible
in effect; gravity zero, so ``p_rgh`` = ``p``. Boundaries: uniform velocity and
fixed temperature on the fluid part of x-, ``p_rgh`` fixed and
``zeroGradient`` velocity and temperature on the fluid part of x+, symmetry on
the y faces of a unit cell (no-slip adiabatic walls for a whole plate),
no-slip adiabatic walls elsewhere, the case's heat flux on the solid bottom
(``externalWallHeatFluxTemperature``, flux mode) under the fin field (or all of
it), and the conjugate interface by
``compressible::turbulentTemperatureCoupledBaffleMixed``.

Schemes: second order as ours (``Gauss linear`` momentum convection, which is
our central deferred correction, van Leer enthalpy convection, which is our
TVD limiter, linear Laplacians on the orthogonal mesh). Convergence: every
equation of both regions (OpenFOAM's normalised
initial residuals, the largest vector component for U), ``tolerance``
(default 1e-6), enforced by ``runTimeControl`` function objects (v1912's
chtMultiRegionSimpleFoam ignores fvSolution's ``residualControl``).
Under-relaxation: U 0.7, p_rgh 0.3, fluid h 0.5 (with 0.9 the van Leer limiter
chatters and the h residual stalls near 1e-3), solid h 1.

Fields are read from the ASCII output with numpy (no ``postProcess``): cells
of each region are mapped to our ``(i, j, k)`` through ``splitMeshRegions``'
``cellRegionAddressing`` and ``blockMesh``'s cell order (block by block, x
fastest within a block).

Parallel, as OpenFOAM's users run it: with ``ranks`` > 1 (default: every core
of the machine, :func:`default_ranks`) :func:`run_case` decomposes both regions
(``decomposePar -allRegions``, ``simple`` slabs along the flow), runs the solver under Debian's Open MPI
(``mpirun -np <ranks> chtMultiRegionSimpleFoam -parallel``; ``--allow-run-as-root``
when run as root, ``--oversubscribe`` only when more ranks than cores are asked
for) and reconstructs the last time (``reconstructPar -allRegions -latestTime``)
for the comparison. Every step is timed apart (:class:`FoamResult`).

The OpenFOAM binaries need ``WM_PROJECT_DIR`` (they look for ``etc/controlDict``
there); :func:`foam_env` sets it to the Debian location unless it is set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aidc_thermo.models import geometry as geo
from aidc_thermo.models.coldplate import ColdPlateCase, _heated_mask, build_geometry

__all__ = [
    "SOLVER",
    "FoamCase",
    "FoamResult",
    "OpenFOAMError",
    "available",
    "default_ranks",
    "foam_env",
    "mpirun_command",
    "quantities",
    "read_field",
    "run_case",
    "write_case",
]

SOLVER = "chtMultiRegionSimpleFoam"
_DEBIAN_PROJECT_DIR = "/usr/share/openfoam"
# copper (and other solids): density and specific heat do not enter a steady
# solution; nominal values (Incropera A.1, pure copper at 300 K)
_SOLID_RHO, _SOLID_CP = 8933.0, 385.0
_P_REF = 1.0e5  # Pa, absolute outlet pressure (the gauge pressure is p - _P_REF)


def _n(x) -> str:
    """A number as OpenFOAM reads it (full precision)."""
    return repr(float(x))


class OpenFOAMError(RuntimeError):
    """An OpenFOAM step failed or its output could not be read."""


def available(ranks: int = 1) -> bool:
    """True when the OpenFOAM executables this module runs are on PATH (and,
    for ``ranks`` > 1, ``decomposePar``, ``reconstructPar`` and ``mpirun``)."""
    tools = ["blockMesh", "splitMeshRegions", SOLVER]
    if ranks > 1:
        tools += ["decomposePar", "reconstructPar", "mpirun"]
    return all(shutil.which(x) for x in tools)


def default_ranks() -> int:
    """MPI ranks for a run on every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def foam_env() -> dict[str, str]:
    """Process environment for the OpenFOAM binaries (Debian layout)."""
    env = dict(os.environ)
    env.setdefault("WM_PROJECT_DIR", _DEBIAN_PROJECT_DIR)
    env.setdefault("WM_PROJECT", "OpenFOAM")
    env.setdefault("WM_PROJECT_VERSION", "v1912")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@dataclass(frozen=True)
class FoamCase:
    """A written OpenFOAM case and what is needed to read it back."""

    folder: Path
    case: ColdPlateCase
    geometry: geo.VoxelGeometry
    cell_ijk: np.ndarray  # (n_cells, 3) int: our (i, j, k) of each blockMesh cell, in blockMesh order
    n_blocks: int
    tolerance: float
    max_iterations: int


@dataclass(frozen=True)
class FoamResult:
    mesh_s: float  # wall time of blockMesh + splitMeshRegions
    solve_s: float  # wall time of the solver (under mpirun when ranks > 1)
    iterations: int  # SIMPLE iterations run
    converged: bool  # every initial residual below the tolerance before max_iterations
    T: np.ndarray  # K, (nx, ny, nz) on our grid (both regions)
    p: np.ndarray  # Pa gauge, (nx, ny, nz); 0 in solid
    outlet_phi: np.ndarray  # kg/s through each outlet face
    outlet_T: np.ndarray  # K on each outlet face (same order)
    heated_T: np.ndarray  # K on each face of the heated patch
    quantities: dict  # dp, R_max, R_mean, T_outlet_bulk, power
    ranks: int = 1  # MPI ranks of the solve
    decompose_s: float = 0.0  # wall time of decomposePar (0 serial)
    reconstruct_s: float = 0.0  # wall time of reconstructPar (0 serial)

    @property
    def total_s(self) -> float:
        """The whole OpenFOAM process chain: mesh, decompose, solve, reconstruct."""
        return self.mesh_s + self.decompose_s + self.solve_s + self.reconstruct_s


# ----------------------------------------------------------------------------- mesh


def _breaks(g: geo.VoxelGeometry, heated_x: np.ndarray) -> list[np.ndarray]:
    """Cell indices where a block starts, per axis (plus the end): wherever the
    spacing or the material (or, along x, the heated footprint) changes."""
    out = []
    for axis in range(3):
        d = np.diff(g.faces[axis])
        cut = np.zeros(len(d) + 1, bool)
        cut[[0, -1]] = True
        cut[1:-1] |= ~np.isclose(d[1:], d[:-1], rtol=1e-6, atol=0.0)
        m = np.moveaxis(g.material, axis, 0)
        cut[1:-1] |= np.any(m[1:] != m[:-1], axis=(1, 2))
        if axis == 0:
            cut[1:-1] |= heated_x[1:] != heated_x[:-1]
        out.append(np.flatnonzero(cut))
    return out


# hex vertex order of blockMesh and the outward faces of a block, per (axis, side)
_HEX = ((0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1))
_FACE = {
    (0, 0): (0, 4, 7, 3),
    (0, 1): (1, 2, 6, 5),
    (1, 0): (0, 1, 5, 4),
    (1, 1): (3, 7, 6, 2),
    (2, 0): (0, 3, 2, 1),
    (2, 1): (4, 5, 6, 7),
}


def _block_mesh(case: ColdPlateCase, g: geo.VoxelGeometry):
    """blockMeshDict text and the (i, j, k) of every cell in blockMesh order."""
    heated_x = _heated_mask(g, case.heated)[:, 0]
    br = _breaks(g, heated_x)
    nb = [len(b) - 1 for b in br]
    pts = [g.faces[a][br[a]] for a in range(3)]

    def vid(i, j, k):
        return i + (nb[0] + 1) * (j + (nb[1] + 1) * k)

    vertices = [(x, y, z) for z in pts[2] for y in pts[1] for x in pts[0]]
    blocks, ijk = [], []
    patches: dict[str, list] = {"inlet": [], "outlet": [], "symmetry": [], "heated": [], "walls": []}
    unit_cell = bool(case.geometry.get("unit_cell"))
    for bk in range(nb[2]):
        for bj in range(nb[1]):
            for bi in range(nb[0]):
                lo = (br[0][bi], br[1][bj], br[2][bk])
                hi = (br[0][bi + 1], br[1][bj + 1], br[2][bk + 1])
                mat = g.material[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
                if np.any(mat != mat.flat[0]):
                    raise ValueError("internal: a block mixes materials")
                fluid = mat.flat[0] == geo.FLUID
                corner = [vid(bi + a, bj + b, bk + c) for a, b, c in _HEX]
                n = [hi[a] - lo[a] for a in range(3)]
                blocks.append(
                    f"    hex ({' '.join(map(str, corner))}) {'fluid' if fluid else 'solid'} "
                    f"({n[0]} {n[1]} {n[2]}) simpleGrading (1 1 1)"
                )
                kk, jj, ii = np.meshgrid(
                    np.arange(lo[2], hi[2]), np.arange(lo[1], hi[1]), np.arange(lo[0], hi[0]), indexing="ij"
                )
                ijk.append(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], 1))
                on_edge = {(a, s): (lo[a] == 0) if s == 0 else (hi[a] == g.shape[a]) for a in range(3) for s in (0, 1)}
                for (axis, side), edge in on_edge.items():
                    if not edge:
                        continue
                    if axis == 0:
                        name = ("inlet" if side == 0 else "outlet") if fluid else "walls"
                    elif axis == 1:
                        name = "symmetry" if unit_cell else "walls"
                    else:
                        name = "heated" if (side == 0 and not fluid and heated_x[lo[0]]) else "walls"
                    patches[name].append(tuple(corner[v] for v in _FACE[(axis, side)]))
    kinds = {"inlet": "patch", "outlet": "patch", "symmetry": "symmetry", "heated": "wall", "walls": "wall"}
    lines = ["convertToMeters 1;", "", "vertices", "("]
    lines += [f"    ({_n(x)} {_n(y)} {_n(z)})" for x, y, z in vertices]
    lines += [");", "", "blocks", "(", *blocks, ");", "", "edges", "(", ");", "", "boundary", "("]
    for name, faces in patches.items():
        if not faces:
            continue
        lines += [f"    {name}", "    {", f"        type {kinds[name]};", "        faces", "        ("]
        lines += [f"            ({' '.join(map(str, f))})" for f in faces]
        lines += ["        );", "    }"]
    lines += [");", "", "mergePatchPairs", "(", ");"]
    return "\n".join(lines) + "\n", np.concatenate(ijk), len(blocks)


# ----------------------------------------------------------------------------- dictionaries


def _header(cls: str, obj: str, location: str | None = None) -> str:
    loc = f'    location    "{location}";\n' if location else ""
    return (
        "FoamFile\n{\n    version     2.0;\n    format      ascii;\n"
        f"    class       {cls};\n{loc}    object      {obj};\n}}\n\n"
    )


def _write(path: Path, cls: str, body: str, location: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_header(cls, path.name, location) + body)


def _bc(entries: dict[str, str]) -> str:
    out = ["boundaryField", "{"]
    for patch, spec in entries.items():
        out += [f"    {patch}", "    {"]
        out += [f"        {line};" for line in spec.split(";") if line.strip()]
        out += ["    }"]
    return "\n".join(out + ["}"]) + "\n"


def _fluid_fields(case: ColdPlateCase, u_in: float) -> dict[str, tuple[str, str]]:
    t_in = case.inlet_temperature
    wall_t = "type zeroGradient"
    return {
        "U": (
            "volVectorField",
            f"dimensions [0 1 -1 0 0 0 0];\ninternalField uniform ({_n(u_in)} 0 0);\n"
            + _bc(
                {
                    "inlet": f"type fixedValue; value uniform ({_n(u_in)} 0 0)",
                    "outlet": "type zeroGradient",
                    "symmetry": "type symmetry",
                    '"(walls|heated|fluid_to_solid)"': "type noSlip",
                }
            ),
        ),
        "p_rgh": (
            "volScalarField",
            f"dimensions [1 -1 -2 0 0 0 0];\ninternalField uniform {_n(_P_REF)};\n"
            + _bc(
                {
                    "outlet": f"type fixedValue; value uniform {_n(_P_REF)}",
                    "symmetry": "type symmetry",
                    '"(inlet|walls|heated|fluid_to_solid)"': f"type fixedFluxPressure; value uniform {_n(_P_REF)}",
                }
            ),
        ),
        "p": (
            "volScalarField",
            f"dimensions [1 -1 -2 0 0 0 0];\ninternalField uniform {_n(_P_REF)};\n"
            + _bc(
                {
                    "symmetry": "type symmetry",
                    '"(inlet|outlet|walls|heated|fluid_to_solid)"': f"type calculated; value uniform {_n(_P_REF)}",
                }
            ),
        ),
        "T": (
            "volScalarField",
            f"dimensions [0 0 0 1 0 0 0];\ninternalField uniform {_n(t_in)};\n"
            + _bc(
                {
                    "inlet": f"type fixedValue; value uniform {_n(t_in)}",
                    "outlet": f"type inletOutlet; inletValue uniform {_n(t_in)}; value uniform {_n(t_in)}",
                    "symmetry": "type symmetry",
                    '"(walls|heated)"': wall_t,
                    "fluid_to_solid": "type compressible::turbulentTemperatureCoupledBaffleMixed; Tnbr T; "
                    f"kappaMethod fluidThermo; kappa none; value uniform {_n(t_in)}",
                }
            ),
        ),
    }


def _solid_fields(case: ColdPlateCase) -> dict[str, tuple[str, str]]:
    t_in = case.inlet_temperature
    return {
        "T": (
            "volScalarField",
            f"dimensions [0 0 0 1 0 0 0];\ninternalField uniform {_n(t_in)};\n"
            + _bc(
                {
                    "heated": f"type externalWallHeatFluxTemperature; mode flux; q uniform {_n(case.heat_flux)}; "
                    f"kappaMethod solidThermo; kappa none; value uniform {_n(t_in)}",
                    "symmetry": "type symmetry",
                    '"(inlet|outlet|walls)"': "type zeroGradient",
                    "solid_to_fluid": "type compressible::turbulentTemperatureCoupledBaffleMixed; Tnbr T; "
                    f"kappaMethod solidThermo; kappa none; value uniform {_n(t_in)}",
                }
            ),
        ),
        "p": (
            "volScalarField",
            f"dimensions [1 -1 -2 0 0 0 0];\ninternalField uniform {_n(_P_REF)};\n"
            + _bc(
                {
                    "symmetry": "type symmetry",
                    '"(inlet|outlet|walls|heated|solid_to_fluid)"': f"type calculated; value uniform {_n(_P_REF)}",
                }
            ),
        ),
    }


def _fluid_thermo(case: ColdPlateCase) -> str:
    t = case.inlet_temperature
    c = case.coolant
    rho, cp, mu, k = (float(f(t)) for f in (c.density, c.cp, c.viscosity, c.conductivity))
    return (
        "thermoType\n{\n    type heRhoThermo;\n    mixture pureMixture;\n    transport const;\n"
        "    thermo hConst;\n    equationOfState rhoConst;\n    specie specie;\n    energy sensibleEnthalpy;\n}\n\n"
        f"// {c.name} at the inlet temperature {t - 273.15:.2f} degC (thermo.coolant): "
        f"k = {_n(k)} W/m/K through Pr = mu cp / k\n"
        "mixture\n{\n    specie { molWeight 18.0153; }\n"
        f"    equationOfState {{ rho {_n(rho)}; }}\n"
        f"    thermodynamics {{ Cp {_n(cp)}; Hf 0; }}\n"
        f"    transport {{ mu {_n(mu)}; Pr {_n(mu * cp / k)}; }}\n}}\n"
    )


def _solid_thermo(case: ColdPlateCase) -> str:
    return (
        "thermoType\n{\n    type heSolidThermo;\n    mixture pureMixture;\n    transport constIso;\n"
        "    thermo hConst;\n    equationOfState rhoConst;\n    specie specie;\n    energy sensibleEnthalpy;\n}\n\n"
        f"// {case.solid_material}: conductivity from the case (thermo.materials); rho and Cp do not enter a"
        " steady solution\n"
        "mixture\n{\n    specie { molWeight 63.546; }\n"
        f"    equationOfState {{ rho {_n(_SOLID_RHO)}; }}\n"
        f"    thermodynamics {{ Cp {_n(_SOLID_CP)}; Hf 0; }}\n"
        f"    transport {{ kappa {_n(case.solid_k)}; }}\n}}\n"
    )


_FLUID_SCHEMES = """ddtSchemes { default steadyState; }
gradSchemes { default Gauss linear; }
divSchemes
{
    default none;
    div(phi,U) bounded Gauss {momentum};
    div(phi,h) bounded Gauss vanLeer;
    div(phi,K) bounded Gauss linear;
    div(phi,Ekp) bounded Gauss linear;
    div(((rho*nuEff)*dev2(T(grad(U))))) Gauss linear;
}
laplacianSchemes { default Gauss linear corrected; }
interpolationSchemes { default linear; }
snGradSchemes { default corrected; }
"""

_SOLID_SCHEMES = """ddtSchemes { default steadyState; }
gradSchemes { default Gauss linear; }
divSchemes { default none; }
laplacianSchemes { default Gauss linear corrected; }
interpolationSchemes { default linear; }
snGradSchemes { default corrected; }
"""


def _fluid_solution(tol: float) -> str:
    return f"""solvers
{{
    "(rho|rhoFinal)" {{ solver PCG; preconditioner DIC; tolerance 1e-12; relTol 0; }}
    p_rgh {{ solver GAMG; smoother GaussSeidel; tolerance {_n(tol * 1e-3)}; relTol 0.01; }}
    "(U|h)" {{ solver PBiCGStab; preconditioner DILU; tolerance {_n(tol * 1e-3)}; relTol 0.1; }}
}}
SIMPLE
{{
    momentumPredictor yes;
    nNonOrthogonalCorrectors 0;
    pRefCell 0;
    pRefValue {_n(_P_REF)};
}}
relaxationFactors
{{
    fields {{ rho 1; p_rgh 0.3; }}
    equations {{ U 0.7; h 0.5; }}
}}
"""


def _solid_solution(tol: float) -> str:
    return f"""solvers
{{
    h {{ solver PCG; preconditioner DIC; tolerance {_n(tol * 1e-3)}; relTol 0.1; }}
}}
SIMPLE
{{
    nNonOrthogonalCorrectors 0;
}}
relaxationFactors {{ equations {{ h 1; }} }}
"""


def _conditions(fields, tol: float) -> str:
    # one condition per field, all in one group: in v1912 a single condition over
    # several fields (mode minimum) is satisfied as soon as ANY field is below
    return "\n".join(
        f"            {f} {{ type equationInitialResidual; fields ({f}); value {_n(tol)}; mode minimum; groupID 1; }}"
        for f in fields
    )


def _convergence_control(tol: float) -> str:
    """Stop when every initial residual of an iteration is below ``tol`` (the
    largest vector component for U):
    the fluid region's (U components, p_rgh, h) set a trigger, then the solid's
    h ends the run. (chtMultiRegionSimpleFoam v1912 ignores ``residualControl``
    in fvSolution, so the run-time-control function objects do it.)"""
    return f"""
functions
{{
    fluidConverged
    {{
        type runTimeControl;
        libs ("libutilityFunctionObjects.so");
        region fluid;
        conditions
        {{
{_conditions(("U", "p_rgh", "h"), tol)}
        }}
        satisfiedAction setTrigger;
        trigger 1;
    }}
    solidConverged
    {{
        type runTimeControl;
        libs ("libutilityFunctionObjects.so");
        region solid;
        controlMode trigger;
        triggerStart 1;
        conditions
        {{
{_conditions(("h",), tol)}
        }}
        satisfiedAction end;
    }}
}}
"""


# ----------------------------------------------------------------------------- writer


def write_case(
    case: ColdPlateCase,
    folder: str | Path,
    *,
    tolerance: float = 1e-6,
    max_iterations: int = 20000,
    momentum_scheme: str = "linear",
) -> FoamCase:
    """Write an OpenFOAM case for ``case`` (a ``resolved_coldplate`` case with
    ``geometry.kind = "straight_fins"``) into ``folder`` (created; must be empty
    or absent).

    ``tolerance``: every initial residual (U, p_rgh, h; solid h) at which the run stops;
    ``momentum_scheme``: the interpolation of ``div(phi,U)`` (``"linear"``, or
    e.g. ``"linearUpwind grad(U)"``, ``"upwind"``).
    """
    if case.geometry_kind != "straight_fins":
        raise ValueError(
            f"the OpenFOAM writer handles geometry.kind = 'straight_fins' only, not {case.geometry_kind!r} "
            "(pin fins and voxel masks are not block-structured for blockMesh)"
        )
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty")
    g = build_geometry(case)
    block_mesh, ijk, n_blocks = _block_mesh(case, g)
    dy, dz = np.diff(g.faces[1]), np.diff(g.faces[2])
    inlet_area = float((dy[:, None] * dz[None, :])[g.material[0] == geo.FLUID].sum())
    u_in = case.flow_rate / inlet_area

    _write(folder / "system" / "blockMeshDict", "dictionary", block_mesh, "system")
    _write(
        folder / "system" / "controlDict",
        "dictionary",
        f"application {SOLVER};\nstartFrom startTime;\nstartTime 0;\nstopAt endTime;\n"
        f"endTime {max_iterations};\ndeltaT 1;\nwriteControl timeStep;\nwriteInterval {max_iterations};\n"
        "purgeWrite 0;\nwriteFormat ascii;\nwritePrecision 12;\nwriteCompression off;\ntimeFormat general;\n"
        "timePrecision 8;\nrunTimeModifiable false;\n" + _convergence_control(tolerance),
        "system",
    )
    _write(folder / "system" / "fvSchemes", "dictionary", _SOLID_SCHEMES, "system")  # read by splitMeshRegions
    _write(folder / "system" / "fvSolution", "dictionary", "", "system")
    _write(
        folder / "constant" / "regionProperties",
        "dictionary",
        "regions\n(\n    fluid (fluid)\n    solid (solid)\n);\n",
        "constant",
    )
    gravity = "dimensions [0 1 -2 0 0 0 0];\nvalue (0 0 0);\n"
    _write(folder / "constant" / "g", "uniformDimensionedVectorField", gravity, "constant")
    _write(folder / "constant" / "fluid" / "g", "uniformDimensionedVectorField", gravity, "constant/fluid")
    _write(folder / "constant" / "fluid" / "thermophysicalProperties", "dictionary", _fluid_thermo(case))
    _write(folder / "constant" / "fluid" / "turbulenceProperties", "dictionary", "simulationType laminar;\n")
    _write(folder / "constant" / "solid" / "thermophysicalProperties", "dictionary", _solid_thermo(case))
    _write(
        folder / "system" / "fluid" / "fvSchemes",
        "dictionary",
        _FLUID_SCHEMES.replace("{momentum}", momentum_scheme),
    )
    _write(folder / "system" / "solid" / "fvSchemes", "dictionary", _SOLID_SCHEMES)
    _write(folder / "system" / "fluid" / "fvSolution", "dictionary", _fluid_solution(tolerance))
    _write(folder / "system" / "solid" / "fvSolution", "dictionary", _solid_solution(tolerance))
    # initial fields are kept in 0.orig and copied in after splitMeshRegions
    for region, fields in (("fluid", _fluid_fields(case, u_in)), ("solid", _solid_fields(case))):
        for name, (cls, body) in fields.items():
            _write(folder / "0.orig" / region / name, cls, body, f"0/{region}")
    return FoamCase(folder, case, g, ijk, n_blocks, tolerance, max_iterations)


# ----------------------------------------------------------------------------- runner


def _run(args: list[str], folder: Path, log: str, timeout: float | None) -> str:
    try:
        proc = subprocess.run(
            args,
            cwd=folder,
            env={**foam_env(), "PWD": str(folder.resolve())},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OpenFOAMError(f"{' '.join(args)} did not finish in {timeout} s (folder {folder})") from exc
    (folder / f"log.{log}").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or "FOAM FATAL" in proc.stdout + proc.stderr:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise OpenFOAMError(f"{' '.join(args)} failed (exit {proc.returncode}), log.{log}:\n{tail}")
    return proc.stdout


def mesh(fc: FoamCase, timeout: float | None = None) -> float:
    """blockMesh + splitMeshRegions; returns the wall time (s)."""
    t0 = time.perf_counter()
    _run(["blockMesh"], fc.folder, "blockMesh", timeout)
    _run(["splitMeshRegions", "-cellZones", "-overwrite"], fc.folder, "splitMeshRegions", timeout)
    elapsed = time.perf_counter() - t0
    zero = fc.folder / "0"
    if zero.exists():
        shutil.rmtree(zero)
    shutil.copytree(fc.folder / "0.orig", zero)
    return elapsed


def _decompose_dict(ranks: int) -> str:
    # slabs along x (the flow, the long axis of a unit cell): Debian's package
    # ships scotch and metis as dummies, and for a long channel slabs across the
    # flow cut the fewest faces anyway
    return (
        f"numberOfSubdomains {ranks};\nmethod simple;\nsimpleCoeffs\n{{\n    n ({ranks} 1 1);\n    delta 0.001;\n}}\n"
    )


def mpirun_command(ranks: int) -> list[str]:
    """``mpirun -np <ranks>`` with only the options this machine needs: Open MPI
    refuses root without ``--allow-run-as-root`` and more ranks than cores
    without ``--oversubscribe``."""
    cmd = ["mpirun", "-np", str(ranks)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    if ranks > default_ranks():
        cmd.append("--oversubscribe")
    return cmd


def run_case(fc: FoamCase, timeout: float | None = None, ranks: int | None = None) -> FoamResult:
    """Mesh, (decompose,) solve, (reconstruct,) read back; wall time of each step.

    ``ranks``: MPI ranks of the solver; None: every core (:func:`default_ranks`);
    1: serial, no decomposition."""
    ranks = default_ranks() if ranks is None else int(ranks)
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    mesh_s = mesh(fc, timeout)
    decompose_s = reconstruct_s = 0.0
    if ranks > 1:
        for path in [fc.folder / "system" / "decomposeParDict"] + [
            fc.folder / "system" / region / "decomposeParDict" for region in ("fluid", "solid")
        ]:
            _write(path, "dictionary", _decompose_dict(ranks), "system")
        t0 = time.perf_counter()
        _run(["decomposePar", "-allRegions", "-force"], fc.folder, "decomposePar", timeout)
        decompose_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        log = _run([*mpirun_command(ranks), SOLVER, "-parallel"], fc.folder, SOLVER, timeout)
        solve_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _run(["reconstructPar", "-allRegions", "-latestTime"], fc.folder, "reconstructPar", timeout)
        reconstruct_s = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        log = _run([SOLVER], fc.folder, SOLVER, timeout)
        solve_s = time.perf_counter() - t0
    times = [int(m) for m in re.findall(r"^Time = (\d+)\s*$", log, re.M)]
    iterations = max(times) if times else 0
    # the solid region's run-time control prints this when every residual is below the tolerance
    converged = "Stopping calculation" in log
    T, p, outlet_phi, outlet_T, heated_T = _read_back(fc)
    q = quantities(fc.case, fc.geometry, T, p, outlet_phi, outlet_T)
    return FoamResult(
        mesh_s,
        solve_s,
        iterations,
        converged,
        T,
        p,
        outlet_phi,
        outlet_T,
        heated_T,
        q,
        ranks,
        decompose_s,
        reconstruct_s,
    )


def _latest_time(folder: Path) -> Path:
    times = [d for d in folder.iterdir() if d.is_dir() and re.fullmatch(r"\d+(\.\d+)?", d.name) and d.name != "0"]
    if not times:
        raise OpenFOAMError(f"no solution time folder in {folder}")
    return max(times, key=lambda d: float(d.name))


def _read_back(fc: FoamCase):
    g = fc.geometry
    last = _latest_time(fc.folder)
    T = np.full(g.shape, np.nan)
    p = np.zeros(g.shape)
    for region in ("fluid", "solid"):
        cells = read_label_list(fc.folder / "constant" / region / "polyMesh" / "cellRegionAddressing")
        i, j, k = fc.cell_ijk[cells].T
        want = geo.FLUID if region == "fluid" else None
        mat = g.material[i, j, k]
        if (want is not None and np.any(mat != want)) or (want is None and np.any(mat == geo.FLUID)):
            raise OpenFOAMError(f"region {region}: its cells do not map onto our {region} cells (cell order)")
        T[i, j, k] = read_field(last / region / "T")["internal"]
        if region == "fluid":
            p[i, j, k] = read_field(last / region / "p")["internal"] - _P_REF
    if np.any(np.isnan(T)):
        raise OpenFOAMError("some cells are in neither region")
    phi = read_field(last / "fluid" / "phi", patches=("outlet",))["outlet"]
    t_out = read_field(last / "fluid" / "T", patches=("outlet",))["outlet"]
    t_heated = read_field(last / "solid" / "T", patches=("heated",))["heated"]
    return T, p, phi, t_out, t_heated


def quantities(case: ColdPlateCase, g: geo.VoxelGeometry, T, p, outlet_phi, outlet_T) -> dict:
    """dp, dp_10pct (Pa), R_max, R_mean (K/W), T_outlet_bulk (K), power (W), computed as
    in ``thermo.models.coldplate.run``: inlet-face pressure extrapolated from the first
    two cells, area mean over the fluid inlet; base-bottom temperature from the
    first cell and the known flux; outlet bulk temperature flow-weighted."""
    dx, dy, dz = (np.diff(f) for f in g.faces)
    fluid = g.material == geo.FLUID
    area_in = (dy[:, None] * dz[None, :]) * fluid[0]
    x0, x1 = 0.5 * dx[0], dx[0] + 0.5 * dx[1]
    p_face = p[0] - (p[1] - p[0]) * x0 / (x1 - x0)
    dp = float((p_face * area_in).sum() / area_in.sum())
    flux_map = np.where(_heated_mask(g, case.heated), case.heat_flux, 0.0)
    t_bottom = T[:, :, 0] + flux_map * 0.5 * dz[0] / case.solid_k
    heated = flux_map > 0
    power = float((flux_map * dx[:, None] * dy[None, :]).sum())
    t_in = case.inlet_temperature
    # pressure drop from the first cell layer at least 10 % of the fin field downstream of its start
    # (area mean over the fluid): the same measure without the inlet's leading-edge singularity
    i10 = int(np.searchsorted(g.centers(0), g.fin_field[0] + 0.1 * (g.fin_field[1] - g.fin_field[0])))
    area_10 = (dy[:, None] * dz[None, :]) * fluid[i10]
    return {
        "dp": dp,
        "dp_10pct": float((p[i10] * area_10).sum() / area_10.sum()),
        "R_max": float((t_bottom[heated].max() - t_in) / power),
        "R_mean": float((t_bottom[heated].mean() - t_in) / power),
        "T_outlet_bulk": float((outlet_phi * outlet_T).sum() / outlet_phi.sum()),
        "power": power,
    }


# ----------------------------------------------------------------------------- ASCII field files


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _list_at(text: str, start: int) -> tuple[np.ndarray, int]:
    """Numbers of the OpenFOAM list whose count starts at ``start`` (``N (...)``
    with scalars or ``(a b c)`` vectors); returns (values, end index)."""
    m = re.compile(r"\s*(\d+)\s*\(").match(text, start)
    if not m:
        raise OpenFOAMError("expected a counted list")
    n = int(m.group(1))
    depth, pos = 1, m.end()
    while depth:
        c = text[pos]
        depth += (c == "(") - (c == ")")
        pos += 1
    body = text[m.end() : pos - 1].replace("(", " ").replace(")", " ")
    values = np.array(body.split(), float)
    if values.size % n if n else values.size:
        raise OpenFOAMError(f"list of {n} holds {values.size} numbers")
    return (values.reshape(n, -1).squeeze(1) if n and values.size == n else values.reshape(n, -1)), pos


def _value_entry(text: str, key: str, start: int, end: int):
    m = re.compile(rf"\b{key}\s+(uniform|nonuniform)\s+").search(text, start, end)
    if not m:
        return None
    if m.group(1) == "uniform":
        v = re.compile(r"\(?([^;()]*)\)?\s*;").match(text, m.end())
        return np.array(v.group(1).split(), float).squeeze()
    lst = re.compile(r"List<\w+>").match(text, m.end())
    return _list_at(text, lst.end())[0]


def read_field(path: Path, patches: tuple[str, ...] = ()) -> dict:
    """An ASCII vol/surface field: ``{"internal": array, <patch>: array}``."""
    if not path.exists():
        raise OpenFOAMError(f"missing field file {path}")
    text = _strip_comments(path.read_text())
    bstart = text.find("boundaryField")
    out = {"internal": _value_entry(text, "internalField", 0, bstart)}
    for name in patches:
        m = re.compile(rf"\n\s*{re.escape(name)}\s*\{{").search(text, bstart)
        if not m:
            raise OpenFOAMError(f"{path}: no patch {name}")
        end = text.find("}", m.end())
        value = _value_entry(text, "value", m.end(), end if end > 0 else len(text))
        if value is None:
            raise OpenFOAMError(f"{path}: patch {name} has no value")
        out[name] = value
    return out


def read_label_list(path: Path) -> np.ndarray:
    text = _strip_comments(path.read_text())
    m = re.compile(r"\n\s*(\d+)\s*\(").search(text, text.find("}") + 1)
    if not m:
        raise OpenFOAMError(f"{path}: no label list")
    return _list_at(text, m.start())[0].astype(np.int64)
