"""Simulate an FMU with FMPy in a process of its own, for tests/test_fmu.py.

    python tests/_fmu_sim.py FMU REQUEST.npz RESULT.npz

REQUEST.npz holds ``stop_time``, ``step_size``, ``output`` (names), optionally
``input`` (FMPy's structured input array) and ``start_names``/``start_values``.
RESULT.npz gets ``result`` (FMPy's structured result, if the simulation
returned), ``log`` (the FMU's log messages, debug logging on) and ``error``
(the exception FMPy raised, or "").

Why a process of its own: pythonfmu 0.7's native loader intermittently
corrupts the heap of the process that loaded it during teardown (glibc
"corrupted double-linked list", exit 134, in about one run of four here, after
the simulation has returned its complete results). The results are written and
flushed first; the process then leaves with ``os._exit`` so that the teardown
is not run. docs/fmu.md states the issue for users.
"""

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from fmpy import simulate_fmu  # noqa: E402


def main(fmu: str, request: str, result: str) -> None:
    req = np.load(request, allow_pickle=False)
    log: list[str] = []

    def logger(env, instance, status, category, message):
        log.append(message.decode() if isinstance(message, bytes) else str(message))

    kwargs = dict(stop_time=float(req["stop_time"]), step_size=float(req["step_size"]),
                  output_interval=float(req["step_size"]), output=[str(s) for s in req["output"]],
                  logger=logger, debug_logging=True)  # fmt: skip
    if "input" in req:
        kwargs["input"] = req["input"]
    if "start_names" in req:
        names, values = req["start_names"], req["start_values"]
        kwargs["start_values"] = {str(k): float(v) for k, v in zip(names, values, strict=True)}
    out = {"log": np.array(log or [""]), "error": np.array("")}
    try:
        out["result"] = simulate_fmu(fmu, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the test, which checks it
        out["error"] = np.array(f"{type(exc).__name__}: {exc}")
    out["log"] = np.array(log or [""])
    np.savez(result, **out)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:])
