"""Output paths, files on disk and process life (issue 12): thermo never
replaces what it did not write, refuses unwritable paths before solving, leaves
no temporary or empty parent folder behind, recovers from runs killed at any
moment, ends concurrent runs into one folder with one complete result, and
stops on Ctrl-C/SIGTERM with one line and exit 130/143.

Every refusal test hashes every file around the run before and after (the
user's own files, the case file, older results) and requires them
byte-identical. Fast tests run the command in-process on the slab case or use
tests/_output_driver.py (thermo.io.output without JAX) in a subprocess; tests that
start the real command in a subprocess are marked slow."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from aidc_thermo.cli import main
from aidc_thermo.io.output import MANIFEST, ResultsFolder, read_manifest, recover

ROOT = Path(__file__).resolve().parents[1]
SLAB = ROOT / "cases" / "slab.toml"
DRIVER = ROOT / "tests" / "_output_driver.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots`` (hidden ones too): sha256 of files,
    'dir' for folders."""
    out = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                out[os.path.join(dirpath, d)] = "dir"
            for f in filenames:
                p = os.path.join(dirpath, f)
                out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def leftovers(folder: Path) -> list[str]:
    """Temporary, moved-aside or lock entries a run may leave beside its results."""
    return sorted(
        e for e in os.listdir(folder) if e.startswith(".") and (".tmp-" in e or ".old-" in e or e.endswith(".lock"))
    )


@pytest.fixture(scope="module")
def older(tmp_path_factory):
    """A real results folder of the slab case (the 'older results' of the tests)."""
    folder = tmp_path_factory.mktemp("older") / "slab"
    assert main(["run", str(SLAB), "-o", str(folder)]) == 0
    return folder


@pytest.fixture
def no_solve(monkeypatch):
    """Refusals must come before the solve: fail if the model runs."""
    from aidc_thermo.models import stack

    def boom(*args, **kwargs):
        raise AssertionError("the solve started although the output path is refused")

    monkeypatch.setattr(stack, "run", boom)


@pytest.fixture
def case(tmp_path):
    """The slab case in a project folder of the user's, with a file of their own beside it."""
    proj = tmp_path / "project"
    (proj / "cases").mkdir(parents=True)
    case = proj / "cases" / "slab.toml"
    shutil.copy(SLAB, case)
    (proj / "cases" / "notes.md").write_text("my notes on the slab\n")
    (proj / "thesis.tex").write_text("\\chapter{Results}\n")
    (proj / "src").mkdir()
    (proj / "src" / "model.py").write_text("x = 1\n")
    return case


def refused(args, capsys, *, code=2):
    assert main(args) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# --------------------------------------------------------------------------- refusals


def test_existing_file_is_refused_and_kept(tmp_path, case, capsys, no_solve):
    notes = tmp_path / "notes.txt"
    notes.write_text("two years of lab notes\n")
    before = snapshot(tmp_path)
    err = refused(["run", str(case), "-o", str(notes)], capsys)
    assert "is an existing file" in err and "-o results" in err
    assert snapshot(tmp_path) == before


def test_foreign_folder_is_refused_and_kept(tmp_path, case, capsys, no_solve):
    other = tmp_path / "data"
    other.mkdir()
    (other / "measurements.csv").write_text("t,T\n0,30\n")
    (other / "raw").mkdir()
    (other / "raw" / "run1.bin").write_bytes(bytes(range(256)))
    before = snapshot(tmp_path)
    err = refused(["run", str(case), "-o", str(other)], capsys)
    assert "did not write" in err and "measurements.csv" in err
    assert snapshot(tmp_path) == before


def test_results_folder_with_a_file_of_the_users_is_refused(tmp_path, older, case, capsys, no_solve):
    out = tmp_path / "out"
    shutil.copytree(older, out)
    (out / "my_analysis.ipynb").write_text("{}")
    before = snapshot(tmp_path)
    err = refused(["run", str(case), "-o", str(out)], capsys)
    assert "my_analysis.ipynb" in err and "did not write" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("output", [".", "..", "{home}", "/"])
def test_current_home_and_root_folders_are_refused(tmp_path, case, capsys, monkeypatch, no_solve, output):
    work = tmp_path / "work"
    work.mkdir()
    (work / "draft.txt").write_text("my draft\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export X=1\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    err = refused(["run", str(case), "-o", output.format(home=home)], capsys)
    assert any(w in err for w in ("current folder", "home folder", "root folder")), err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("which", ["case folder", "project folder"])
def test_folders_holding_the_case_file_are_refused(tmp_path, case, capsys, monkeypatch, no_solve, which):
    monkeypatch.chdir(tmp_path)
    target = case.parent if which == "case folder" else case.parents[1]
    before = snapshot(tmp_path)
    err = refused(["run", str(case), "-o", str(target)], capsys)
    assert "case file" in err
    assert snapshot(tmp_path) == before


def test_path_below_a_file_is_refused(tmp_path, case, capsys, no_solve):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    before = snapshot(tmp_path)
    err = refused(["run", str(case), "-o", str(notes / "a" / "out")], capsys)
    assert "which is a file" in err
    assert snapshot(tmp_path) == before


def test_path_under_proc_is_refused(tmp_path, case, capsys, no_solve):
    before = snapshot(tmp_path)
    err = refused(["run", str(case), "-o", "/proc/thermo-test/out"], capsys)
    assert "cannot be created" in err
    assert snapshot(tmp_path) == before
    assert not os.path.exists("/proc/thermo-test")


def _mount(args: list[str]) -> str | None:
    """Run mount; the reason it failed, or None."""
    if shutil.which("mount") is None:
        return "no mount command"
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"mount exited {proc.returncode}")


@pytest.fixture
def read_only(tmp_path):
    """A read-only bind mount of a folder holding older results and a file of the user's."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    why = _mount(["--bind", str(src), str(ro)])
    if why is not None:
        pytest.skip(f"cannot make a read-only bind mount here ({why})")
    try:
        yield src, ro
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_read_only_folder_is_refused_before_solving(read_only, older, case, capsys, no_solve):
    src, ro = read_only
    shutil.copytree(older, src / "results")
    (src / "mine.txt").write_text("mine\n")
    why = _mount(["-o", "remount,bind,ro", str(ro)])
    if why is not None:
        pytest.skip(f"cannot remount the bind mount read-only ({why})")
    before = snapshot(src)
    for target in (ro / "results", ro / "new" / "deeper"):
        err = refused(["run", str(case), "-o", str(target)], capsys)
        assert "Read-only file system" in err, err
    assert snapshot(src) == before


@pytest.fixture
def tiny_disk(tmp_path, older):
    """A tmpfs holding the older results with room for less than another copy of them."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    size_kb = sum(p.stat().st_size for p in older.iterdir()) // 1024 + 64
    why = _mount(["-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)])
    if why is not None:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({why})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_disk_filling_up_while_writing_exits_1_and_keeps_the_older_results(tiny_disk, older, case, capsys):
    out = tiny_disk / "slab"
    shutil.copytree(older, out)
    (tiny_disk / "mine.txt").write_text("mine\n")
    before = snapshot(tiny_disk)
    err = refused(["run", str(case), "-o", str(out)], capsys, code=1)
    assert "No space left on device" in err and "older results there are intact" in err, err
    assert snapshot(tiny_disk) == before
    # a new folder below new parents: nothing of it is left, not even the parents
    err = refused(["run", str(case), "-o", str(tiny_disk / "new" / "a" / "b")], capsys, code=1)
    assert snapshot(tiny_disk) == before


# --------------------------------------------------------------------------- what is accepted


def test_empty_existing_folder_is_used(tmp_path, case, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    (tmp_path / "mine.txt").write_text("mine\n")
    assert main(["run", str(case), "-o", str(out)]) == 0
    manifest = read_manifest(out)
    assert manifest is not None and manifest["case_file"] == str(case) and manifest["command"] == "run"
    assert sorted(os.listdir(out)) == sorted([*manifest["files"], MANIFEST])
    assert (tmp_path / "mine.txt").read_text() == "mine\n"
    assert leftovers(tmp_path) == []


def test_run_replaces_its_own_results_and_nothing_beside_them(tmp_path, older, case):
    out = tmp_path / "out"
    shutil.copytree(older, out)
    (tmp_path / "mine.txt").write_text("mine\n")
    stamp = read_manifest(out)["created"]
    time.sleep(1.1)
    assert main(["run", str(case), "-o", str(out)]) == 0
    assert read_manifest(out)["created"] != stamp
    assert (tmp_path / "mine.txt").read_text() == "mine\n"
    assert leftovers(tmp_path) == []


def test_failed_runs_leave_no_parent_folder(tmp_path, case, capsys, monkeypatch):
    """A solve that fails (exit 3; tests/test_cli.py has a real non-converged
    one) and a program error (exit 1) remove the parents the run created."""
    from aidc_thermo.errors import SolveError
    from aidc_thermo.models import stack

    def not_converged(case, case_file, folder):
        (folder / "results.h5").write_bytes(b"partial")
        raise SolveError("did not converge: residual 1e-3 after 1 iterations")

    monkeypatch.setattr(stack, "run", not_converged)
    assert main(["run", str(case), "-o", str(tmp_path / "new" / "a" / "b")]) == 3
    assert "Traceback" not in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["project"]

    def bug(case, case_file, folder):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(stack, "run", bug)
    with pytest.raises(ZeroDivisionError):
        main(["run", str(case), "-o", str(tmp_path / "new" / "a" / "b")])
    assert sorted(os.listdir(tmp_path)) == ["project"]


def test_folder_changed_while_solving_is_refused_at_write_time(tmp_path, case, capsys, monkeypatch):
    from aidc_thermo.models import stack

    out = tmp_path / "out"
    real_run = stack.run

    def run_then_user_writes(*args, **kwargs):
        summary = real_run(*args, **kwargs)
        out.mkdir()
        (out / "diary.txt").write_text("written while thermo was solving\n")
        return summary

    monkeypatch.setattr(stack, "run", run_then_user_writes)
    err = refused(["run", str(case), "-o", str(out)], capsys)
    assert "changed while this run was solving" in err and "diary.txt" in err
    assert sorted(os.listdir(out)) == ["diary.txt"]
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- killed runs


def driver(out: Path, moment: str, ident: str = "x", go: Path | None = None, **kw):
    args = [sys.executable, str(DRIVER), str(out), moment, ident] + ([str(go)] if go else [])
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=60, **kw)


@pytest.mark.parametrize("moment", ["solve", "writing", "between", "after"])
def test_kill_9_leaves_older_results_and_the_next_run_cleans_up(tmp_path, older, case, moment):
    out = tmp_path / "out"
    shutil.copytree(older, out)
    (tmp_path / "mine.txt").write_text("mine\n")
    before = snapshot(out, tmp_path / "mine.txt")
    proc = driver(out, moment)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert leftovers(tmp_path), "the killed run should have left its temporary folder"
    # what a next run does first: the older results are back (or, killed after the
    # swap, the complete new ones are in place) and nothing else is left
    notes = recover(tmp_path, "out")
    assert notes
    assert leftovers(tmp_path) == []
    if moment == "after":
        assert sorted(os.listdir(out)) == sorted([*read_manifest(out)["files"], MANIFEST])
        assert (out / "part5.txt").read_text().startswith("x 5")
    else:
        assert snapshot(out, tmp_path / "mine.txt") == before
    # and a real run into the same folder after another kill works and cleans up
    assert driver(out, moment).returncode == -signal.SIGKILL
    assert main(["run", str(case), "-o", str(out)]) == 0
    assert leftovers(tmp_path) == [] and (out / "summary.json").is_file()
    assert (tmp_path / "mine.txt").read_text() == "mine\n"


def test_temporary_folder_of_a_live_run_is_not_removed(tmp_path):
    out = tmp_path / "out"
    live = ResultsFolder(out, command="test")
    tmp = live.prepare()
    (tmp / "a.txt").write_text("in progress")
    other = ResultsFolder(out, command="test")
    other.prepare()
    assert tmp.is_dir() and (tmp / "a.txt").is_file()
    other.abort()
    live.abort()
    assert leftovers(tmp_path) == [] and not out.exists()


def test_concurrent_runs_into_one_folder_end_with_one_complete_result(tmp_path):
    out = tmp_path / "out"
    for round_ in range(3):
        go = tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen(
                [sys.executable, str(DRIVER), str(out), "slowswap", f"w{round_}{i}", str(go)],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        deadline = time.monotonic() + 60
        while sum(e.startswith(".out.tmp-") for e in os.listdir(tmp_path)) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # all four are writing their files and wait at the barrier
        go.write_text("")
        results = [p.communicate(timeout=60) for p in procs]
        for p, (_stdout, stderr) in zip(procs, results, strict=True):
            assert p.returncode == 0 and "Traceback" not in stderr, stderr
        manifest = read_manifest(out)
        assert sorted(os.listdir(out)) == sorted([*manifest["files"], MANIFEST])
        writers = {(out / f).read_text().split()[0] for f in manifest["files"]}
        assert len(writers) == 1 and writers <= {f"w{round_}{i}" for i in range(4)}
        assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_signal_stops_cleanly_with_one_line(tmp_path, older, signum, code, word):
    out = tmp_path / "out"
    shutil.copytree(older, out)
    before = snapshot(out)
    p = subprocess.Popen(
        [sys.executable, str(DRIVER), str(out), "wait", "x"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signum)
    _, stderr = p.communicate(timeout=30)
    assert p.returncode == code, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines() == [stderr.strip()]
    assert word in stderr and "left as it was" in stderr
    assert snapshot(out) == before and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- reproducibility


def test_same_case_twice_gives_bit_identical_results(tmp_path, case):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(case), "-o", str(a)]) == 0
    assert main(["run", str(case), "-o", str(b)]) == 0
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (a, b))
    for s in (sa, sb):  # wall-clock times are the one thing allowed to differ
        s.pop("timing", None)
    assert sa == sb and json.dumps(sa) == json.dumps(sb)
    assert (a / "results.xdmf").read_bytes() == (b / "results.xdmf").read_bytes()
    ma, mb = read_manifest(a), read_manifest(b)
    for m in (ma, mb):
        del m["created"]
    assert ma == mb

    def canon(v):
        """Bytes of a numeric value; the strings of a variable-length (object) one,
        whose raw bytes are pointers."""
        v = np.asarray(v)
        if v.dtype.kind == "O":
            return (v.shape, [x.decode() if isinstance(x, bytes) else str(x) for x in v.ravel().tolist()])
        return (v.dtype.str, v.shape, v.tobytes())

    def datasets(path):
        out = {}
        with h5py.File(path) as h5:

            def visit(name, obj):
                attrs = {k: canon(v) for k, v in obj.attrs.items()}
                if isinstance(obj, h5py.Dataset):
                    out[name] = (canon(obj[()]), attrs)
                else:
                    out[name] = attrs

            h5.visititems(visit)
            out["/"] = {k: canon(v) for k, v in h5.attrs.items()}
        return out

    da, db = datasets(a / "results.h5"), datasets(b / "results.h5")
    assert "fields/temperature" in da or any(k.startswith("fields/") for k in da)
    assert da.keys() == db.keys()
    for key in da:
        assert da[key] == db[key], key


# --------------------------------------------------------------------------- the real command


def thermo(args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "aidc_thermo", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_for_tmp(parent: Path, name: str, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not any(e.startswith(f".{name}.tmp-") for e in os.listdir(parent)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_real_run_interrupted_during_the_solve(tmp_path, older, signum, code):
    """The resolved unit cell compiles and solves for seconds: the signal lands in XLA."""
    out = tmp_path / "out"
    shutil.copytree(older, out)
    before = snapshot(out)
    p = thermo(["run", str(ROOT / "cases" / "coldplate_unit_cell.toml"), "-o", str(out)])
    wait_for_tmp(tmp_path, "out", p)
    time.sleep(1.0)
    p.send_signal(signum)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == code, stderr
    assert "Traceback" not in stderr and "Segmentation" not in stderr
    assert snapshot(out) == before and leftovers(tmp_path) == []


@pytest.mark.slow
def test_real_run_killed_during_the_solve_then_rerun(tmp_path, older, case):
    out = tmp_path / "out"
    shutil.copytree(older, out)
    before = snapshot(out)
    p = thermo(["run", str(ROOT / "cases" / "coldplate_unit_cell.toml"), "-o", str(out)])
    wait_for_tmp(tmp_path, "out", p)
    time.sleep(0.5)
    p.kill()
    p.communicate()
    assert snapshot(out) == before and leftovers(tmp_path)
    assert main(["run", str(case), "-o", str(out)]) == 0
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_two_real_runs_into_one_folder(tmp_path, case):
    out = tmp_path / "out"
    procs = [thermo(["run", str(case), "-o", str(out)]) for _ in range(2)]
    for p in procs:
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 0 and "Traceback" not in stderr, stderr
    manifest = read_manifest(out)
    assert sorted(os.listdir(out)) == sorted([*manifest["files"], MANIFEST])
    assert json.loads((out / "summary.json").read_text())["solver_converged"]["value"] is True
    assert leftovers(tmp_path) == []


def test_liveness_of_temporary_folder_owners():
    """Stale = same host and the PID gone, a zombie, or reused by a process that
    started later; anything else (other hosts, unknown names) is left alone."""
    from aidc_thermo.io.output import _host, _new_token, _owner_alive

    me = _new_token()
    assert _owner_alive(me)
    host, pid, start, rand = me.rsplit("-", 3)
    assert not _owner_alive(f"{host}-{pid}-{int(start) + 1}-{rand}")  # our PID, another start time
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not _owner_alive(f"{_host()}-{int(p.stdout)}-{start}-{rand}")  # exited and reaped
    assert _owner_alive(f"{host}x-{pid}-{int(start) + 1}-{rand}")  # another host: cannot judge
    assert _owner_alive("q0nlbh8g")  # a name of an older thermo version: cannot judge
