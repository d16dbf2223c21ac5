"""Progress and timing of a solving command, on standard error.

A command (``thermo run``, ``optimize``, ``calibrate``) opens a
:func:`session`; the models mark where they are with two one-line hooks,
which do nothing outside a session (a model used as a library prints
nothing):

* :func:`phase` ``(name)``: the command enters a phase (``parse``, ``build``,
  ``solve``, ``write``); the previous one ends. A phase may recur (a facility
  optimization builds and solves at every evaluation); times add up per name.
* :func:`step` ``(label, i, n, residual=, tolerance=)``: step ``i`` of at most
  ``n`` of a loop that thermo drives from Python (viscosity coupling,
  calibration points, optimizer evaluations) has finished, with its residual
  when there is one.

The kernels are pure JAX inside ``while_loop``: they are not instrumented
(no callbacks, no host I/O), so progress is per phase and per outer step, and
iterations inside a compiled solve are not shown.

JAX compilation (tracing, lowering to XLA and XLA's compile) is timed from
JAX's own monitoring events (``jax.monitoring``), so every jit in every model
is counted without touching its call: compile time is the union of those
intervals, and each phase's own time excludes it. :meth:`Reporter.timing`
gives ``compile_s``, ``solve_s``, ``total_s`` and the other phases, and
:meth:`Reporter.counts` the XLA programs compiled and those loaded from the
persistent compilation cache (:mod:`thermo.compile_cache`); the command
prints them at the end and writes them into ``summary.json`` under a separate
top-level ``timing`` entry (:func:`add_timing`), apart from the headline
numbers because they change from run to run.

Display: on a terminal, one live line redrawn a few times a second (phase,
time in it, what JAX is compiling, the last outer step, its residual and an
ETA when one can be estimated); otherwise plain lines, one per finished phase
and at most one every :data:`HEARTBEAT` seconds in between; nothing with
``--quiet``.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "HEARTBEAT",
    "Reporter",
    "add_timing",
    "default_mode",
    "finish_into",
    "phase",
    "say",
    "session",
    "step",
    "timing_line",
]

#: seconds between plain progress lines while a phase runs (not on a terminal)
HEARTBEAT = 10.0
#: seconds between redraws of the live line (terminal)
REDRAW = 0.25

# JAX's monitoring events around compilation: tracing to a jaxpr, lowering to
# an MLIR module, XLA's compile (jax._src.dispatch)
_COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "tracing",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering",
    "/jax/core/compile/backend_compile_duration": "compiling",
}
# JAX's persistent-cache events (jax._src.compiler): a program XLA would
# compile asks the cache; a hit is loaded instead of compiled
_CACHE_EVENTS = {
    "/jax/compilation_cache/compile_requests_use_cache": "requests",
    "/jax/compilation_cache/cache_hits": "hits",
}
_SPINNER = "|/-\\"

_active: Reporter | None = None
_unrecorded = threading.local()  # depth of unrecorded() blocks in this thread


@contextmanager
def unrecorded():
    """Leave the JAX compiles of this block, in this thread, out of the
    session's program counts and compile time: for a program that is not the
    command's own (the one-line program with which
    :mod:`thermo.compile_options` asks XLA which options it knows). JAX calls
    its listeners in the compiling thread."""
    depth = _unrecorded_depth()
    _unrecorded.depth = depth + 1
    try:
        yield
    finally:
        _unrecorded.depth = depth


def _unrecorded_depth() -> int:
    return getattr(_unrecorded, "depth", 0)


TIMING_DESCRIPTIONS = {
    "compile_s": "JAX tracing, lowering and XLA compilation (all phases)",
    "solve_s": "solving, without compilation",
    "parse_s": "reading and checking the case file",
    "build_s": "building grids, networks and inputs, without compilation",
    "write_s": "summaries, results files and plots, without compilation",
    "total_s": "the whole command, from reading the case to the last file written",
}
COUNT_DESCRIPTIONS = {
    "programs_compiled": "XLA programs this command compiled (not found in the persistent compilation cache)",
    "programs_from_cache": "XLA programs loaded from the persistent compilation cache instead of compiled",
    "executables_from_cache": "whole solver programs loaded from the executable cache (no tracing, lowering or "
    "compiling)",
    "executables_stored": "solver programs compiled this run and written to the executable cache",
}


def phase(name: str, ready=None) -> None:
    """Enter phase ``name`` of the running command (no-op outside a session).

    ``ready``: JAX arrays (any pytree) the previous phase computed; JAX
    dispatches asynchronously, so they are waited for first (only in a
    session), or their computing time would count in the next phase."""
    if _active is not None:
        if ready is not None:
            import jax

            jax.block_until_ready(ready)
        _active.phase(name)


def step(label: str, i: int, n: int | None = None, *, residual: float | None = None, tolerance=None) -> None:
    """Step ``i`` (1-based) of at most ``n`` of loop ``label`` has finished,
    with its ``residual`` (and the ``tolerance`` it is driven to) if any."""
    if _active is not None:
        _active.step(label, i, n, residual, tolerance)


def _union_length(spans: list[tuple[float, float]], lo: float = -math.inf, hi: float = math.inf) -> float:
    """Length of the union of ``spans`` clipped to ``[lo, hi]`` (nested
    compile events count once)."""
    total, end = 0.0, -math.inf
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in spans):
        if b <= a:
            continue
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


class Reporter:
    """Phase and step bookkeeping, compile timing and display for one command.

    ``mode``: ``"live"`` (a redrawn line, for a terminal), ``"lines"`` (plain
    lines) or ``"quiet"`` (nothing shown; timing still kept).
    """

    def __init__(self, stream=None, mode: str = "lines", heartbeat: float = HEARTBEAT, redraw: float = REDRAW):
        if mode not in ("live", "lines", "quiet"):
            raise ValueError(f"progress mode must be live, lines or quiet, got {mode!r}")
        self.stream = sys.stderr if stream is None else stream
        self.mode = mode
        self.heartbeat = heartbeat
        self.redraw = redraw
        self.start = time.time()
        self.end: float | None = None
        self.phases: list[tuple[str, float, float | None]] = []  # (name, start, end)
        self.compile_spans: list[tuple[float, float]] = []
        self.backend_compiles = 0  # XLA compile requests (a cache hit included)
        self.cache_counts = {"requests": 0, "hits": 0}
        self.executable_counts = {"loaded": 0, "stored": 0}  # thermo.compile_cache's executable cache
        self._compiling: list[tuple[str, str, float]] = []  # (what, function, start) being compiled now
        # outer loops by label, in order of appearance: the last step's i, n,
        # residual, tolerance, and when each step finished / its residual
        self._loops: dict[str, dict] = {}
        self._phase_names: set[str] = set()
        self._last_line = self.start
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    # ------------------------------------------------------------ JAX events

    def _on_scalar(self, event: str, value: float, **kwargs) -> None:
        # JAX records the start of a compile event as a scalar (its start time)
        if _unrecorded_depth():
            return
        if event in _COMPILE_EVENTS:
            with self._lock:
                self._compiling.append((_COMPILE_EVENTS[event], str(kwargs.get("fun_name", "")), time.time()))

    def _on_event(self, event: str, **kwargs) -> None:
        if _unrecorded_depth():
            return
        if event in _CACHE_EVENTS:
            with self._lock:
                self.cache_counts[_CACHE_EVENTS[event]] += 1

    def _on_span(self, event: str, start: float, end: float, **kwargs) -> None:
        if _unrecorded_depth():
            return
        if event in _COMPILE_EVENTS:
            with self._lock:
                self.compile_spans.append((start, end))
                if _COMPILE_EVENTS[event] == "compiling":
                    self.backend_compiles += 1
                if self._compiling:
                    self._compiling.pop()

    def executable_cache_event(self, kind: str, start: float, end: float) -> None:
        """An executable loaded from (``"loaded"``) or written to (``"stored"``)
        :mod:`thermo.compile_cache`'s executable cache: counted, and its time
        counted as compile time."""
        with self._lock:
            self.compile_spans.append((start, end))
            self.executable_counts[kind] += 1

    def _on_duration(self, event: str, duration: float, **kwargs) -> None:
        # JAX versions without time-span events: the span ends now
        now = time.time()
        self._on_span(event, now - duration, now, **kwargs)

    @contextmanager
    def listening(self):
        """Receive JAX's compile events while the block runs."""
        from jax import monitoring

        if hasattr(monitoring, "register_event_time_span_listener"):
            span = ("register_event_time_span_listener", "unregister_event_time_span_listener", self._on_span)
        else:  # older JAX: durations only
            span = ("register_event_duration_secs_listener", "unregister_event_duration_listener", self._on_duration)
        pairs = [
            ("register_scalar_listener", "unregister_scalar_listener", self._on_scalar),
            ("register_event_listener", "unregister_event_listener", self._on_event),
            span,
        ]
        pairs = [p for p in pairs if hasattr(monitoring, p[0])]  # older JAX may lack one: less detail, no error
        for register, _, cb in pairs:
            getattr(monitoring, register)(cb)
        try:
            yield self
        finally:
            for _, unregister, cb in pairs:
                if hasattr(monitoring, unregister):
                    getattr(monitoring, unregister)(cb)

    # ------------------------------------------------------------ hooks

    def phase(self, name: str) -> None:
        now = time.time()
        with self._lock:
            if self.phases and self.phases[-1][0] == name and self.phases[-1][2] is None:
                return  # already in it
            finished = self._close_phase(now)
            self.phases.append((name, now, None))
            for label in [k for k, loop in self._loops.items() if self._loop_done(loop)]:
                del self._loops[label]  # a finished loop leaves the live line when the next phase starts
        if finished is not None:
            self._phase_done(*finished)

    def step(self, label: str, i: int, n: int | None = None, residual=None, tolerance=None) -> None:
        now = time.time()
        with self._lock:
            loop = self._loops.get(label)
            if loop is None or i <= loop["i"]:  # a new run of this loop (an inner loop of the next outer step)
                loop = self._loops[label] = {"times": [], "residuals": []}
                self._loops[label] = self._loops.pop(label)  # most recently (re)started last
            loop.update(i=int(i), n=n, residual=residual, tolerance=tolerance)
            loop["times"].append(now)
            if residual is not None:
                loop["residuals"].append(float(residual))
        if self.mode == "lines" and now - self._last_line >= self.heartbeat:
            self._print(f"  {self._current_name()}: {self._loop_text(label, now)}")

    # ------------------------------------------------------------ bookkeeping

    def _current_name(self) -> str:
        return self.phases[-1][0] if self.phases else ""

    def _close_phase(self, now: float):
        if self.phases and self.phases[-1][2] is None:
            name, start, _ = self.phases[-1]
            self.phases[-1] = (name, start, now)
            return name, start, now
        return None

    def eta(self, label: str, now: float | None = None) -> float | None:
        """Seconds left in outer loop ``label``, when they can be estimated:
        from its residual's rate of decrease towards its tolerance, else from
        the steps left; a step takes as long as the last one (the first
        includes compilation, so two steps are needed)."""
        loop = self._loops.get(label)
        if loop is None or len(loop["times"]) < 2:
            return None
        times, hist, tol = loop["times"], loop["residuals"], loop["tolerance"]
        per_step = times[-1] - times[-2]
        left = None
        if tol is not None and len(hist) >= 2 and 0 < hist[-1] < hist[-2]:
            left = math.ceil(math.log(tol / hist[-1]) / math.log(hist[-1] / hist[-2])) if hist[-1] > tol else 0
        if loop["n"] is not None:
            cap = max(loop["n"] - loop["i"], 0)
            left = cap if left is None else min(left, cap)
        if not left:
            return None  # unknown, or nothing left
        return max(left * per_step - ((now or time.time()) - times[-1]), 0.0)

    @staticmethod
    def _loop_done(loop: dict) -> bool:
        r, tol, n = loop["residual"], loop["tolerance"], loop["n"]
        return (n is not None and loop["i"] >= n) or (r is not None and tol is not None and r <= tol)

    def _loop_text(self, label: str, now: float) -> str:
        loop = self._loops[label]
        text = f"{label} {loop['i']}" + (f"/{loop['n']}" if loop["n"] is not None else "")
        if loop["residual"] is not None:
            text += f", residual {loop['residual']:.2e}"
            if loop["tolerance"] is not None:
                text += f" (tolerance {loop['tolerance']:.0e})"
        eta = self.eta(label, now)
        if eta is not None:
            text += f", ETA {_fmt_s(eta)}"
        return text

    def timing(self) -> dict[str, float]:
        """Seconds: ``compile_s``, ``<phase>_s`` for each phase (its own time,
        without compilation) and ``total_s``."""
        end = self.end if self.end is not None else time.time()
        out = {"compile_s": _union_length(self.compile_spans, self.start, end), "solve_s": 0.0}
        for name, a, b in self.phases:
            b = end if b is None else b
            own = (b - a) - _union_length(self.compile_spans, a, b)
            out[f"{name}_s"] = out.get(f"{name}_s", 0.0) + max(own, 0.0)
        out["total_s"] = end - self.start
        return out

    def counts(self) -> dict[str, int]:
        """``programs_compiled`` and ``programs_from_cache``: XLA programs this
        command compiled, and those it loaded from the persistent compilation
        cache (JAX times a cache hit as a compile: it is in ``compile_s``)."""
        with self._lock:
            hits = self.cache_counts["hits"]
            return {
                "programs_compiled": max(self.backend_compiles - hits, 0),
                "programs_from_cache": hits,
                "executables_from_cache": self.executable_counts["loaded"],
                "executables_stored": self.executable_counts["stored"],
            }

    # ------------------------------------------------------------ display

    def _print(self, text: str) -> None:
        if self.mode == "quiet":
            return
        with self._lock:
            if self.mode == "live":
                self._clear()
            print(text, file=self.stream, flush=True)
            self._last_line = time.time()

    def _clear(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def _phase_done(self, name: str, a: float, b: float) -> None:
        if self.mode == "quiet":
            return
        first = name not in self._phase_names
        self._phase_names.add(name)
        if not first and b - self._last_line < self.heartbeat:
            return  # a recurring phase (one per optimizer evaluation, say): not a line each time
        compiled = _union_length(self.compile_spans, a, b)
        if b - a < 0.05:
            return  # nothing worth a line (the command's default phase, refined at once by the model)
        text = f"  {name:<6} {_fmt_s(b - a):>10}"
        if compiled >= 0.05:
            text += f"  (compile {_fmt_s(compiled)})"
        self._print(text)

    def status_line(self, now: float | None = None) -> str:
        """The live line: phase, time in it, compilation, last step, ETA."""
        now = time.time() if now is None else now
        with self._lock:
            if not self.phases:
                return ""
            name, a, _ = self.phases[-1]
            parts = [f"{name} {_fmt_s(now - a)}"]
            if self._compiling:
                what, fun, t0 = self._compiling[0]
                parts.append(f"JAX {what} {fun} {_fmt_s(now - t0)}".replace("  ", " "))
            parts += [self._loop_text(label, now) for label in self._loops]
        return " | ".join(parts)

    def _tick(self) -> None:
        n = 0
        while not self._stop.wait(self.redraw):
            now = time.time()
            if self.mode == "live":
                line = f"{_SPINNER[n % len(_SPINNER)]} {self.status_line(now)}"
                n += 1
                cols = shutil.get_terminal_size((100, 24)).columns
                line = line[: max(cols - 1, 20)]
                with self._lock:
                    pad = max(self._width - len(line), 0)
                    self.stream.write("\r" + line + " " * pad)
                    self.stream.flush()
                    self._width = len(line)
            elif now - self._last_line >= self.heartbeat:
                self._print(f"  ... {self.status_line(now)}")

    def __enter__(self):
        if self.mode != "quiet":
            self._thread = threading.Thread(target=self._tick, name="thermo-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """End the last phase and the display."""
        if self.end is not None:
            return
        now = time.time()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            finished = self._close_phase(now)
            self.end = now
            if self.mode == "live":
                self._clear()
                self.stream.flush()
        if finished is not None:
            self._phase_done(*finished)


def default_mode(stream, quiet: bool) -> str:
    """``quiet`` if asked, ``live`` on a terminal, plain ``lines`` otherwise."""
    if quiet:
        return "quiet"
    isatty = getattr(stream, "isatty", None)
    return "live" if isatty is not None and isatty() else "lines"


@contextmanager
def session(mode: str, stream=None, first_phase: str = "parse"):
    """Report the command run inside the block, starting in ``first_phase``;
    yields its :class:`Reporter` (closed when the block ends)."""
    global _active
    reporter = Reporter(stream, mode)
    previous, _active = _active, reporter
    try:
        with reporter.listening(), reporter:
            reporter.phase(first_phase)
            yield reporter
    finally:
        reporter.close()
        _active = previous


def say(text: str) -> None:
    """A line of commentary on standard error: through the session's display
    (which clears its live line first; nothing when quiet), or plainly
    outside a session."""
    if _active is None:
        print(text, file=sys.stderr)
    else:
        _active._print(text)


def executable_cache_event(kind: str, start: float, end: float) -> None:
    """Record a load from or a store into the executable cache in the session
    (nothing outside one)."""
    if _active is not None:
        _active.executable_cache_event(kind, start, end)


def finish_into(folder: Path) -> dict[str, float] | None:
    """End the session's last phase and add its timing to ``folder``'s
    ``summary.json`` (:func:`add_timing`); the timing, or None outside a session."""
    if _active is None:
        return None
    _active.close()
    timing = {**_active.timing(), **_active.counts()}
    add_timing(folder, timing)
    return timing


def timing_line(timing: dict[str, float]) -> str:
    """``time: compile .. (n programs, m from the cache), solve .., total ..``
    for the end of a command."""
    others = ", ".join(
        f"{k[:-2]} {_fmt_s(v)}"
        for k, v in timing.items()
        if k.endswith("_s") and k not in ("compile_s", "solve_s", "total_s")
    )
    programs = ""
    if "programs_compiled" in timing:
        n_new, n_hit = int(timing["programs_compiled"]), int(timing.get("programs_from_cache", 0))
        n_exe = int(timing.get("executables_from_cache", 0))
        exe = f", {n_exe} solver executables loaded" if n_exe else ""
        programs = f" ({n_new + n_hit} programs, {n_hit} from the compile cache{exe})"
    return (
        f"time: compile {_fmt_s(timing['compile_s'])}{programs}, solve {_fmt_s(timing['solve_s'])}"
        + (f" ({others})" if others else "")
        + f", total {_fmt_s(timing['total_s'])}"
    )


def add_timing(folder: Path, timing: dict[str, float]) -> None:
    """Add ``timing`` to ``folder/summary.json`` as one top-level ``timing``
    entry: ``{name: {value, unit, description}}``, like the headline numbers
    but kept apart from them (timings differ from run to run; a comparison of
    two runs' results ignores this entry)."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    entry = {}
    for key, value in timing.items():
        if key in COUNT_DESCRIPTIONS:
            entry[key] = {"value": int(value), "unit": "", "description": COUNT_DESCRIPTIONS[key]}
        else:
            entry[key] = {
                "value": round(value, 3),
                "unit": "s",
                "description": TIMING_DESCRIPTIONS.get(key, f"the {key[:-2]} phase, without compilation"),
            }
    data["timing"] = entry
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
