"""A stand-in for ``thermo run`` used by tests/test_output_paths.py: it goes
through :class:`thermo.io.output.ResultsFolder` exactly as the command does, but
writes small fake results (no JAX, so it starts in a fraction of a second) and
can die by SIGKILL at a chosen moment.

    python tests/_output_driver.py OUT MOMENT IDENT [GO_FILE]

MOMENT: ``none`` (finish), ``solve`` (killed after the temporary folder exists,
before anything is written), ``writing`` (killed with half the files written),
``between`` (killed between moving the older results aside and moving the new
ones in), ``after`` (killed after the new folder is in place, before the older
one is deleted), ``slowswap`` (finish, but pause 0.3 s between the two renames,
which widens the window in which concurrent runs would collide), ``wait``
(prints "ready" once the files are written and sleeps; the command-line signal
handling is installed, so the test can send a signal).
With GO_FILE the run waits for that file to exist before finishing, so several
runs can finish at the same moment.
"""

import os
import signal
import sys
import time
from pathlib import Path


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    from aidc_thermo.io.output import ResultsFolder, handle_signals

    out, moment, ident = sys.argv[1], sys.argv[2], sys.argv[3]
    go = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    if moment == "wait":
        handle_signals()
    folder = ResultsFolder(out, command="test")
    folder.prepare()
    tmp_prefix = f".{folder.target.name}.tmp-"
    real_rename = os.rename

    def rename(src, dst):
        real_rename(src, dst)
        if Path(dst).name.startswith(f".{folder.target.name}.old-"):
            if moment == "between":
                _die()
            if moment == "slowswap":
                time.sleep(0.3)
        if moment == "after" and Path(src).name.startswith(tmp_prefix):
            _die()

    os.rename = rename
    if moment == "solve":
        _die()
    with folder.writing() as tmp:
        for i in range(6):
            (tmp / f"part{i}.txt").write_text(f"{ident} {i}\n" * 2000)
            if moment == "writing" and i == 2:
                _die()
        if moment == "wait":
            print("ready", flush=True)
            time.sleep(120)
        if go is not None:
            while not go.exists():
                time.sleep(0.001)
    print("done", flush=True)


if __name__ == "__main__":
    main()
