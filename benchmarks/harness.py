"""Timing harness: machine facts, compile-then-time with ``block_until_ready``,
medians of repeats, JSON records and the RESULTS.md table.

Speed is measured here, never asserted in tests. Every benchmark checks its
answer before it is timed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Record:
    benchmark: str
    case: str
    dtype: str
    metrics: dict = field(default_factory=dict)
    check: dict = field(default_factory=dict)


def timeit(fn, *args, repeats: int = 5, min_time: float = 0.0):
    """Compile (first call), then time ``repeats`` calls; returns
    ``(median_s, spread_s, last_output)`` with spread = max - min."""
    out = fn(*args)
    jax.block_until_ready(out)
    times = []
    t_start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - t_start) < min_time:
        t0 = time.perf_counter()
        out = fn(*args)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
        if len(times) >= 50:
            break
    return statistics.median(times), max(times) - min(times), out


def copy_bandwidth(n_bytes: int = 256 * 2**20, repeats: int = 7) -> dict:
    """Measured copy bandwidth (read + write bytes per second): numpy on one
    thread, numpy on one thread per core, and a jitted JAX scaling of the same
    array."""
    n = n_bytes // 8
    a = np.random.default_rng(0).standard_normal(n)
    b = np.empty_like(a)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - t0)
    numpy_bw = 2 * a.nbytes / statistics.median(times)
    # the same copy split over one thread per core (numpy releases the GIL):
    # what a multi-threaded XLA kernel can reach, the roofline basis on a CPU
    cores = os.cpu_count() or 1
    parts = np.array_split(np.arange(n), cores)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]
    times = []
    with ThreadPoolExecutor(len(bounds)) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(lambda ab: np.copyto(b[ab[0] : ab[1]], a[ab[0] : ab[1]]), bounds))
            times.append(time.perf_counter() - t0)
    threaded_bw = 2 * a.nbytes / statistics.median(times)
    x = jax.device_put(a.astype(np.float32))
    f = jax.jit(lambda v: v * np.float32(1.0000001))
    t, _, _ = timeit(f, x, repeats=repeats)
    jax_bw = 2 * x.nbytes / t
    return {
        "numpy_copy_GBps": numpy_bw / 1e9,
        "threaded_copy_GBps": threaded_bw / 1e9,
        "jax_scale_GBps": jax_bw / 1e9,
    }


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = jax.devices()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "n_devices": len(jax.devices()),
    }


def machine_name(info: dict) -> str:
    if info["backend"] == "cpu":
        return f"cpu{info['cores']}"
    return info["device"].replace(" ", "-").lower()


def save(records: list[Record], info: dict, bandwidth: dict, quick: bool) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    suffix = "-quick" if quick else ""
    path = RESULTS_DIR / f"{machine_name(info)}-{stamp}{suffix}.json"
    payload = {
        "date": stamp,
        "quick": quick,
        "machine": info,
        "bandwidth": bandwidth,
        "records": [asdict(r) for r in records],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)
    return path
