"""``thermo sweep`` on the bundled sweep (cases/sweep_compact_channel_flow.toml:
the GPU cold plate, channel width x flow, 1,000 designs): designs per hour end
to end and in the compiled solve, compilations per bucket, and the overhead
of the sweep machinery (parsing and building every design, stacking, sharding,
screening, atomic chunk files, the table) against the bare batched kernel
``jit(vmap(solve + report))`` timed on the same stacked designs, compile
excluded from both."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from aidc_thermo import sweep
from benchmarks.harness import Record

SWEEP = Path(__file__).resolve().parents[1] / "cases" / "sweep_compact_channel_flow.toml"


def _variant(folder: Path, points=(4, 4), cells: int = 16, name: str = "quick") -> Path:
    """The bundled sweep with fewer points and / or another plate grid (``cells`` x ``cells``)."""
    text = SWEEP.read_text()
    text = text.replace("points = 40", f"points = {points[0]}").replace("points = 25", f"points = {points[1]}")
    text = text.replace("values = [16]", f"values = [{cells}]")
    base = SWEEP.parent / "compact_gpu_coldplate.toml"
    text = text.replace('case = "compact_gpu_coldplate.toml"', f'case = "{base}"')
    path = folder / f"sweep_{name}.toml"
    path.write_text(text)
    return path


def bare_kernel_seconds(sweep_file: Path) -> tuple[float, int]:
    """Seconds of the bare batched kernel over the sweep's designs (same chunks, compiled first)."""
    spec = sweep.read_sweep(sweep_file)
    table = sweep.designs(spec)
    model, buckets, params = sweep._parse_all(spec, table)
    total, n = 0.0, 0
    for static, ids in buckets.items():
        size = sweep._chunk_size(model, static, len(jax.local_devices()), spec.chunk_size)
        size = min(size, -(-len(ids) // len(jax.local_devices())) * len(jax.local_devices()))
        fn = sweep._batched(model, static)
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
        stacked = [model.stack_params([params[i] for i in c] + [params[c[-1]]] * (size - len(c))) for c in chunks]
        compiled = fn.lower(stacked[0]).compile()
        for x in stacked:
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled(x))
            total += time.perf_counter() - t0
            assert bool(np.all(np.asarray(out["converged"]))), "a design did not converge"
            n += len(x.flow)
    return total, n


def run(quick: bool = False, cells: int | None = None, points=(8, 8)) -> list[Record]:
    """The bundled sweep (``quick``: 4 x 4 designs); with ``cells``, the same sweep of ``points`` designs on a
    ``cells`` x ``cells`` plate grid (the GPU script: 256 x 256)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if cells is not None:
            sweep_file = _variant(tmp, points, cells, f"{cells}")
        else:
            sweep_file = _variant(tmp) if quick else SWEEP
        t0 = time.perf_counter()
        res = sweep.run_sweep(sweep_file, tmp / "out", quiet=True, plots=False)
        wall = time.perf_counter() - t0
        info = (tmp / "out" / "sweep.json").read_text()
        t_bare, n_bare = bare_kernel_seconds(sweep_file)
    failed = int(re.search(r'"failed": (\d+)', info).group(1))
    overhead = (wall - res.compile_s - t_bare) / t_bare
    return [
        Record(
            "sweep",
            f"plate{cells}" if cells else ("quick" if quick else "channel_flow"),
            "float64",
            metrics={
                "designs": res.n_designs,
                "devices": len(jax.local_devices()),
                "buckets": res.buckets,
                "compilations_per_bucket": res.compilations / res.buckets,
                "wall_s": wall,
                "compile_s": res.compile_s,
                "solve_s": res.solve_s,
                "designs_per_hour_end_to_end": 3600 * res.n_designs / wall,
                "designs_per_hour_solve": res.designs_per_hour,
                "bare_kernel_s": t_bare,
                "machinery_overhead": overhead,
            },
            check={"failed_designs": failed, "bare_designs": n_bare},
        )
    ]
