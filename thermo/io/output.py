"""Where a run's results go, and how they get there without losing anyone's files.

Rules (see README.md, "What a run writes"):

* A results folder holds a ``manifest.json`` written by this tool (tool name,
  version, command, case file and its SHA-256, time, host, the files written).
  Only such a folder, holding nothing but the files its manifest lists, is ever
  replaced. An empty folder or a path that does not exist may be used; anything
  else (a file, a folder with files thermo did not write, the current folder, a
  folder holding the case file, the home folder, ``/``, or any folder above one
  of these) is refused with :class:`OutputRefused` (exit 2), before the solve
  and again just before the results are moved into place.
* A run writes into a hidden temporary folder ``.NAME.tmp-HOST-PID-START-RAND``
  beside the target, created (with any missing parent folders) before the
  solve, so an unwritable path is refused before anyone waits for a solve. On
  any failure the temporary folder and the parent folders this run created are
  removed. A failure while writing (disk full, I/O error) is
  :class:`OutputWriteFailed` (exit 1); the older results stay as they were.
* The finished folder replaces the target under an exclusive ``flock`` on
  ``.NAME.lock`` (so concurrent runs into one folder end with one complete
  result, the last one's): an absent or empty target in one atomic rename; an
  older results folder by renaming it to ``.NAME.old-TOKEN``, renaming the new
  folder into place, and deleting the old one.
* At the start of a run, hidden ``.NAME.tmp-*``/``.NAME.old-*`` folders of runs
  that are no longer alive (killed with SIGKILL, power loss) are cleaned up: a
  run killed between the two renames left the target missing and the old
  results under ``.NAME.old-*``: they are renamed back. Liveness is read from the
  host name, PID and process start time in the folder's name; folders of other
  hosts (shared file systems) are left alone.

:func:`handle_signals` (installed by the ``thermo`` command) turns SIGINT,
SIGTERM and SIGHUP into a clean stop: the temporary folder is removed, one line
is printed and the process exits with 128 + the signal number (130 for Ctrl-C),
without waiting for a running XLA computation and without interpreter shutdown.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "MANIFEST",
    "OutputRefused",
    "OutputWriteFailed",
    "ResultsFolder",
    "handle_signals",
    "read_manifest",
]

MANIFEST = "manifest.json"
TOOL = "aidc-thermo"

#: errno values that mean "the file system would not take the results"
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


class OutputRefused(Exception):
    """The output path cannot or must not receive results (exit 2); nothing was written."""


class OutputWriteFailed(Exception):
    """Writing the results failed part-way (exit 1); the temporary folder was removed and any
    older results are intact."""


# --------------------------------------------------------------------------- owners


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:48] or "host"


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


_TOKEN = re.compile(r"(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-(?P<start>\d+)-(?P<rand>[0-9a-f]{8})")


def _new_token() -> str:
    pid = os.getpid()
    stat = _proc_stat(pid)
    return f"{_host()}-{pid}-{stat[1] if stat else 0}-{secrets.token_hex(4)}"


def _owner_alive(token: str) -> bool:
    """Whether the process that named a temporary folder may still be running.
    Unknown formats and other hosts count as alive (never delete what we cannot judge)."""
    m = _TOKEN.fullmatch(token)
    if m is None or m["host"] != _host():
        return True
    pid = int(m["pid"])
    stat = _proc_stat(pid)
    if stat is not None:
        state, start = stat
        if state in ("Z", "X"):
            return False
        return m["start"] == "0" or start == m["start"]  # a different start time: the PID was reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- manifest


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of a results folder written by this tool, or None."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tool") != TOOL or not isinstance(data.get("files"), list):
        return None
    return data


# --------------------------------------------------------------------------- rules


def _resolve(path: str | Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).resolve()


def _is_at_or_above(folder: Path, other: Path) -> bool:
    return folder == other or folder in other.parents


def _names(entries: list[str], n: int = 4) -> str:
    shown = ", ".join(sorted(entries)[:n])
    return shown + (f" and {len(entries) - n} more" if len(entries) > n else "")


def _cwd() -> Path | None:
    try:
        return Path.cwd().resolve()
    except OSError:  # the current folder was deleted
        return None


#: files a desktop puts into any folder it shows; replacing them loses nothing
_DESKTOP_LITTER = {".DS_Store", "Thumbs.db"}


def refusal(target: Path, case_file: Path | None = None) -> str | None:
    """Why results must not go to ``target`` (a resolved path); None if they may."""
    if target == Path(target.anchor):
        return "is the root folder"
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        home = None
    if home is not None and _is_at_or_above(target, home):
        return "is your home folder" if target == home else f"is above your home folder {home}"
    cwd = _cwd()
    if cwd is not None and _is_at_or_above(target, cwd):
        return "is the current folder" if target == cwd else f"is above the current folder {cwd}"
    if case_file is not None and _is_at_or_above(target, case_file.parent):
        if target == case_file.parent:
            return f"is the folder of the case file {case_file.name}"
        return f"is above the case file {case_file}"
    if os.path.lexists(target):
        if not target.is_dir():
            return "is an existing file" if target.is_file() else "exists and is not a folder"
        try:
            entries = os.listdir(target)
        except OSError as exc:
            return f"is a folder that cannot be read ({exc.strerror})"
        if not entries:
            return None
        manifest = read_manifest(target)
        if manifest is None:
            return (
                f"is a folder that thermo did not write (no {MANIFEST} from {TOOL}); it holds "
                f"{_names(entries)}, which replacing it would delete"
            )
        foreign = [e for e in entries if e != MANIFEST and e not in manifest["files"] and e not in _DESKTOP_LITTER]
        if foreign:
            return (
                f"holds results of thermo but also {_names(foreign)}, which thermo did not write "
                f"and replacing the folder would delete"
            )
        return None
    above = target.parent
    while not os.path.lexists(above):
        above = above.parent
    if not above.is_dir():
        return f"lies below {above}, which is a file"
    return None


def _suggest(target: Path, case_file: Path | None) -> str:
    stem = case_file.stem if case_file is not None else "results"
    cwd = _cwd()
    if cwd is None:
        return "a new, empty folder"
    base = cwd / "results"
    for i in range(1, 50):
        cand = base / (stem if i == 1 else f"{stem}_{i}")
        if cand != target and not os.path.lexists(cand) and refusal(cand, case_file) is None:
            try:
                return os.path.relpath(cand)
            except ValueError:
                return str(cand)
    return "a new, empty folder"


# --------------------------------------------------------------------------- locking


@contextmanager
def _lock(parent: Path, name: str):
    """Exclusive lock on ``parent/.name.lock``, removed again when released (the
    inode check makes the removal safe against a waiter holding the old file)."""
    path = parent / f".{name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # the file we locked was removed by its previous holder: lock the new one
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


#: Serialises this process's changes on disk with the signal watcher thread.
_CRITICAL = threading.RLock()
_ACTIVE: list[ResultsFolder] = []


def _rmtree(path: Path) -> None:
    for _ in range(3):  # a writer in another thread may add a file while we remove
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a folder
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def recover(parent: Path, name: str) -> list[str]:
    """Undo what killed runs left beside ``parent/name``: put back older results
    a run left under ``.name.old-*`` (killed between its two renames), remove
    ``.name.old-*`` and ``.name.tmp-*`` folders of runs no longer alive. Returns
    notes for the user."""
    notes: list[str] = []
    old_prefix, tmp_prefix = f".{name}.old-", f".{name}.tmp-"

    def dead(prefix):
        try:
            entries = os.listdir(parent)
        except OSError:
            return []
        return [parent / e for e in sorted(entries) if e.startswith(prefix) and not _owner_alive(e[len(prefix) :])]

    if dead(old_prefix) or os.path.lexists(parent / f".{name}.lock"):
        # a lock file alone is what a run killed during its renames leaves; taking the lock removes it
        target = parent / name
        with _lock(parent, name):
            for old in dead(old_prefix):
                if not os.path.lexists(target):
                    os.rename(old, target)
                    notes.append(f"put back the results in {target} that a killed run had moved aside")
                else:
                    _rmtree(old)
                    notes.append(f"removed the older results a killed run had already replaced in {target}")
    stale = dead(tmp_prefix)
    if stale:
        size = sum(_size(p) for p in stale)
        for p in stale:
            _rmtree(p)
        notes.append(
            f"removed {len(stale)} temporary folder(s) ({size / 1e6:.1f} MB) beside {parent / name} left by killed runs"
        )
    return notes


# --------------------------------------------------------------------------- the folder


class ResultsFolder:
    """One run's way to its results folder::

        folder = ResultsFolder(out, case_file=path, command="run")
        folder.prepare()              # refusals (exit 2) before any solving
        with folder.writing() as tmp: # write everything into tmp
            ...
        # tmp is now `out`

    ``prepare`` checks the rules, recovers from killed runs and creates the
    temporary folder (and missing parents). ``writing`` removes everything this
    run created if the block raises, and otherwise moves the folder into place.
    """

    def __init__(self, target: str | Path, *, case_file: str | Path | None = None, command: str = "run"):
        self.given = os.fspath(target)
        self.target = _resolve(target)
        self.case_file = _resolve(case_file) if case_file is not None else None
        self.command = command
        self.token = _new_token()
        self.tmp: Path | None = None
        self.created: list[Path] = []
        self.notes: list[str] = []
        self.committed = False
        self._case_sha256: str | None = None

    # -- refusals
    def _refuse(self, reason: str, when: str = "") -> OutputRefused:
        return OutputRefused(
            f"output folder {self.given!r} {reason}{when}; refusing to write there. Results go into a "
            f"folder of their own: a new or empty folder, or one an earlier thermo run wrote "
            f"(e.g. -o {_suggest(self.target, self.case_file)})"
        )

    def prepare(self) -> Path:
        if self.tmp is not None:
            return self.tmp
        reason = refusal(self.target, self.case_file)
        parent, name = self.target.parent, self.target.name
        with _CRITICAL:
            _ACTIVE.append(self)
            try:
                if reason is None and parent.is_dir():
                    # a run killed between its renames left the target missing: put it back first
                    try:
                        self.notes += recover(parent, name)
                    except OSError as exc:
                        raise self._refuse(
                            f"cannot be written: cleaning up after a killed run in {parent} failed ({exc.strerror})"
                        ) from None
                    reason = refusal(self.target, self.case_file)
                if reason is not None:
                    raise self._refuse(reason)
                if self.case_file is not None:
                    try:
                        self._case_sha256 = hashlib.sha256(self.case_file.read_bytes()).hexdigest()
                    except OSError:
                        self._case_sha256 = None
                missing = []
                p = parent
                while not os.path.lexists(p):
                    missing.append(p)
                    p = p.parent
                for d in reversed(missing):
                    try:
                        os.mkdir(d)
                    except FileExistsError:
                        continue
                    except OSError as exc:
                        raise self._refuse(f"cannot be created: creating {d} failed ({exc.strerror})") from None
                    self.created.append(d)
                tmp = parent / f".{name}.tmp-{self.token}"
                try:
                    os.mkdir(tmp)  # 0o777 less the umask: an ordinary folder once renamed
                except OSError as exc:
                    raise self._refuse(
                        f"cannot be written: creating a folder in {parent} failed ({exc.strerror})"
                    ) from None
                self.tmp = tmp
            except BaseException:
                self.abort()
                raise
        return self.tmp

    # -- the end of a run
    def abort(self) -> None:
        """Remove the temporary folder and the parent folders this run created."""
        with _CRITICAL:
            if self.tmp is not None:
                _rmtree(self.tmp)
                self.tmp = None
            if not self.committed:
                for d in reversed(self.created):
                    try:
                        os.rmdir(d)
                    except OSError:
                        break
            self.created = []
            if self in _ACTIVE:
                _ACTIVE.remove(self)

    def _write_manifest(self) -> None:
        files = sorted(os.listdir(self.tmp))
        manifest = {
            "tool": TOOL,
            "version": _version(),
            "command": self.command,
            "case_file": str(self.case_file) if self.case_file is not None else None,
            "case_sha256": self._case_sha256,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "files": files,
        }
        for root, _, names in os.walk(self.tmp):
            for f in names:
                _fsync(Path(root) / f)
        part = self.tmp / (MANIFEST + ".part")
        with open(part, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(manifest, indent=1) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(part, self.tmp / MANIFEST)
        _fsync(self.tmp)

    def commit(self) -> None:
        """Move the finished temporary folder into place (see the module docstring)."""
        parent, name = self.target.parent, self.target.name
        with _CRITICAL:
            self._write_manifest()
            with _lock(parent, name):
                reason = refusal(self.target, self.case_file)
                if reason is not None:
                    raise self._refuse(reason, " (it changed while this run was solving)")
                if not os.path.lexists(self.target) or not os.listdir(self.target):
                    os.replace(self.tmp, self.target)  # rename(2) replaces an empty folder atomically
                else:
                    old = parent / f".{name}.old-{self.token}"
                    os.rename(self.target, old)
                    try:
                        os.rename(self.tmp, self.target)
                    except BaseException:
                        os.rename(old, self.target)
                        raise
                    self.committed = True
                    _rmtree(old)
                self.committed = True
                self.tmp = None
                try:
                    _fsync(parent)
                except OSError:
                    pass  # the results are in place; a folder fsync failing does not undo that
            if self in _ACTIVE:
                _ACTIVE.remove(self)

    @contextmanager
    def writing(self):
        tmp = self.prepare()
        try:
            yield tmp
        except BaseException as exc:
            failure = _write_failure(exc, tmp)
            self.abort()
            if failure is not None:
                raise OutputWriteFailed(self._failed(failure)) from exc
            raise
        try:
            self.commit()
        except OutputRefused:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise OutputWriteFailed(self._failed(exc.strerror or str(exc))) from exc
        except BaseException:
            self.abort()
            raise

    def _failed(self, why: str) -> str:
        older = "; the older results there are intact" if os.path.lexists(self.target) else ""
        return f"writing the results to {self.given!r} failed: {why}. Nothing was written{older}"


def _write_failure(exc: BaseException, tmp: Path) -> str | None:
    """The reason if ``exc`` is the file system refusing the results (disk full,
    read-only, I/O error), else None (a solver or program error)."""
    if isinstance(exc, OSError):
        inside = exc.filename is not None and str(tmp) in os.fspath(exc.filename)
        if exc.errno in _WRITE_ERRNOS or inside:
            return f"{exc.strerror or exc} (errno {exc.errno})" if exc.errno else str(exc)
    if isinstance(exc, Exception) and not isinstance(exc, OSError):
        text = str(exc)
        m = re.search(r"errno = (\d+), error message = '([^']*)'", text)  # HDF5's own I/O errors
        if m and int(m[1]) in _WRITE_ERRNOS:
            return f"{m[2]} (errno {m[1]})"
    if exc.__cause__ is not None and exc.__cause__ is not exc:
        return _write_failure(exc.__cause__, tmp)
    if exc.__context__ is not None and exc.__context__ is not exc and not exc.__suppress_context__:
        return _write_failure(exc.__context__, tmp)
    return None


def _version() -> str:
    from aidc_thermo import __version__

    return __version__


# --------------------------------------------------------------------------- signals

_SIGNALS = {
    signal.SIGINT: (130, "interrupted"),
    signal.SIGTERM: (143, "terminated"),
    signal.SIGHUP: (129, "hung up"),
}


def _watch(fd: int) -> None:
    while True:
        try:
            data = os.read(fd, 1)
        except InterruptedError:
            continue
        if not data:
            return
        if data[0] in _SIGNALS:
            _stop(data[0])


def _stop(signum: int) -> None:
    code, word = _SIGNALS[signum]
    with _CRITICAL:  # waits for a rename in progress to finish
        active = list(_ACTIVE)
        for folder in active:
            folder.abort()
        what = "".join(f"; {f.given!r} was left as it was" for f in active)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed pipe must not keep us from exiting
                pass
        try:
            os.write(2, f"thermo: {word} ({signal.Signals(signum).name}){what}\n".encode())
        except OSError:
            pass
        os._exit(code)


def handle_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP stop the process cleanly (see the module
    docstring). Call once, from the main thread, in a command-line entry point.
    A signal that was ignored when the process started stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    installed = False
    for signum in _SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue
        signal.signal(signum, _note_signal)
        installed = True
    if not installed:
        os.close(r)
        os.close(w)
        return
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(r,), name="thermo-signals", daemon=True).start()


def _note_signal(signum, frame) -> None:
    """Python-level handler: nothing to do here; the C-level handler has already
    written the signal number to the wakeup pipe that :func:`_watch` reads, even
    while the main thread is inside a long XLA computation."""
