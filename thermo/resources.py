"""Will a case fit? Memory estimates from declared sizes, before anything is allocated.

Every model calls :func:`require_memory` from its ``parse`` as soon as the
sizes are known (cell counts, trays, hours, iteration limits), before any grid
or array exists, so that ``thermo check`` and ``thermo run`` refuse a case that
cannot fit with exit status 2, naming the keys that set the size, the estimate
and the memory the machine has available, instead of dying in the allocator
(or being killed by the operating system) later.

An estimate is ``count x bytes per unit`` plus the solver's fixed working set
(residual histories of ``max_iterations + 1`` entries). The bytes per unit are
the *peak resident memory above the process's baseline* per cell (per column,
tray or hour), measured with ``/usr/bin/time -v`` on the bundled cases at two
sizes each (the slope between them, so that the JAX/XLA import and compile
baseline cancels), rounded up by about 1.5x; see :data:`BYTES_PER_UNIT` for the
measured figures. They are estimates: a case refused near the limit may have
fitted, one accepted near it may still fail; the margin is stated in the
message.

Sizes too large for any machine (more than :data:`MAX_CELLS` cells, counts at
the integer limits) are refused by :func:`require_count` before arithmetic on
them can overflow a fixed-width integer.
"""

from __future__ import annotations

import os
from pathlib import Path

from aidc_thermo.io.case import CaseError

__all__ = [
    "BYTES_PER_UNIT",
    "MAX_CELLS",
    "available_memory",
    "require_count",
    "require_memory",
    "format_bytes",
]

#: The most cells (or network nodes, or hour x point solves) any case may
#: declare: grids index cells with 32-bit integers in places, and no machine
#: this tool runs on holds 2^31 cells of a 3D field set.
MAX_CELLS = 2**31 - 1

#: Peak resident bytes per unit by case type, CPU, float64, measured with
#: ``/usr/bin/time -v`` (maximum resident set size) on the bundled cases at two
#: sizes: the slope between them, rounded up about 1.5x. The figures (2026-12-01,
#: on the 2-core development machine; Python + JAX import alone: 262 MB):
#:
#: * package_stack: accelerator_700w at 64x64x16 and 192x192x16 cells
#:   (65,536 and 589,824 cells): 663 MB and 888 MB, slope 440 B/cell -> 700.
#: * resolved_coldplate (and closure_calibration, which solves the same unit
#:   cell one Reynolds number at a time): coldplate_unit_cell at 6,144 and
#:   43,008 cells (cells.length 32 -> 128, cells.fin_height 12 -> 24): 1,231 MB
#:   and 1,389 MB (a second run of the larger: 1,659 MB), slope 4.4 (11.8) kB
#:   per cell -> 8,000.
#: * compact_coldplate: one flow's solve (the flows are solved one after
#:   another on a CPU; :func:`aidc_thermo.models.compact._require_memory` adds
#:   every flow's fields at 16 B per unit). compact_gpu_coldplate (5 layers)
#:   at 240x240, 384x384 and 512x512 columns (2026-12-06, a 2-core AMD EPYC
#:   machine, family 25 model 17; thermo run, both caches off): with 3 flows
#:   1,627 / 2,263 / 2,935 MiB, with 12 flows 1,792 / 2,404 / 3,124 MiB: slope
#:   6.5-6.8 kB per column = 610 B per column x (layers + 6) -> 900, and 7.7 B
#:   per unit per further flow. (Measured before with all flows at once by
#:   vmap: 536 B per unit and flow.)
#: * rack_network (not a slope: the bundled rack is small): the Newton step
#:   factorises the condensed manifold ladder as one dense block of about 2
#:   nodes per tray (LU with tees: matrix, factors and a copy), 4 x 8 B x
#:   (2 n)^2, plus 4 kB per tray and plate of edge arrays.
#: * facility: every hour at every supply setpoint (the case's and the sweep's)
#:   is solved at once (vmap): about 60 operating-point quantities and the
#:   Newton residual history (max_iterations + 1) per solve, 8 B each, times 4
#:   for JAX intermediates. The temperate bundled year (8,760 hours x 12
#:   setpoints, 60 iterations: 0.41 GB by this formula) peaked at 738 MB, 476 MB
#:   above the import.
BYTES_PER_UNIT = {
    "package_stack": 700,
    "resolved_coldplate": 8_000,
    "closure_calibration": 8_000,
    "compact_coldplate": 900,
}

#: Peak resident bytes above the Python + JAX import that a run of the
#: smallest bundled case of each type still needs (compiling the solver, its
#: runtime buffers), measured as above: stack 663 - 262 MB, unit cell 1,231 -
#: 262 MB, rack 648 - 262 MB; compact plate: the peak less the import and the
#: estimate of its columns, at most 1.09 GB over 48x48 to 240x240 columns and
#: 3 to 33 flows (2026-12-06), rounded up to 1.5 GB; for the facility the
#: per-solve figure above already covers the measured peak.
BASELINE = {
    "package_stack": 400e6,
    "resolved_coldplate": 950e6,
    "closure_calibration": 950e6,
    "compact_coldplate": 1.5e9,
    "rack_network": 400e6,
    "facility": 0.0,
}

#: Only this share of the available memory is counted on (the rest is left to
#: the operating system, JAX's compiler and the estimate's error).
USABLE_FRACTION = 0.8


def format_bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _cgroup_headroom() -> int | None:
    """Memory left under a cgroup v2 limit (containers, batch jobs), if any."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int:
    """Bytes this process can still allocate: ``MemAvailable`` of
    ``/proc/meminfo`` (else ``os.sysconf`` available pages), lowered to the
    headroom under a cgroup memory limit. ``THERMO_MEMORY_LIMIT`` (bytes)
    overrides it, for tests and for sharing a machine."""
    override = os.environ.get("THERMO_MEMORY_LIMIT")
    if override:
        try:
            return int(float(override))
        except ValueError:
            pass
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 2**62  # unknown: do not refuse on memory grounds
    cg = _cgroup_headroom()
    return min(avail, cg) if cg is not None else avail


def require_count(file, keys: str | tuple[str, ...], count: int, what: str, limit: int = MAX_CELLS) -> int:
    """Refuse ``count`` (an exact Python int) above ``limit``, naming ``keys``."""
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if count > limit:
        raise CaseError(
            file,
            keys[0],
            f"{count:.3g} {what} (set by {', '.join(keys)}) is more than any run can hold "
            f"(at most {limit:,}); use fewer",
        )
    return count


def require_memory(file, case_type: str, parts) -> None:
    """Refuse a case whose estimated memory exceeds what this machine has
    available. ``parts`` is a list of ``(keys, bytes, how)``: the keys that set
    one part of the estimate, its size and how it was estimated; the case
    type's :data:`BASELINE` is added. The message names the keys of the
    largest part first."""
    parts = sorted(((tuple([k] if isinstance(k, str) else k), int(b), how) for k, b, how in parts),
                   key=lambda p: -p[1])  # fmt: skip
    base = int(BASELINE[case_type])
    needed = sum(p[1] for p in parts) + base
    avail = available_memory()
    if needed > USABLE_FRACTION * avail:
        shown = [p for p in parts if p[1] > 0.05 * needed] or parts[:1]
        keys = list(dict.fromkeys(k for p in shown for k in p[0]))
        how = "; ".join(f"{h} = {format_bytes(b)}" for _, b, h in shown)
        if base:
            how += f"; compiling and running the solver = {format_bytes(base)}"
        raise CaseError(
            file,
            keys[0],
            f"this case needs about {format_bytes(needed)} of memory ({how}; set by {', '.join(keys)}), "
            f"but this machine has {format_bytes(avail)} available (the estimate must stay under "
            f"{USABLE_FRACTION:.0%} of it): use fewer cells, or run it on a larger machine",
        )


def history_bytes(max_iterations: int, solves: int = 1) -> int:
    """Residual histories: ``max_iterations + 1`` float64 per solve."""
    return 8 * (max_iterations + 1) * solves
