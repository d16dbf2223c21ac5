"""``thermo examples``: the bundled cases and their data travel with the package,
copy into a folder of the user's, run from there, and never overwrite a file."""

import hashlib
import tomllib
from pathlib import Path

import pytest

from aidc_thermo.cli import main
from aidc_thermo.examples import example_files

ROOT = Path(__file__).resolve().parents[1]


def test_every_bundled_case_and_data_file_is_an_example():
    shipped = set(example_files())
    in_repo = {
        str(p.relative_to(ROOT / "cases"))
        for p in (ROOT / "cases").rglob("*")
        if p.is_file() and p.name != "__init__.py" and "__pycache__" not in p.parts
    }
    assert shipped == in_repo
    assert {n for n in shipped if n.endswith(".toml")} == {p.name for p in (ROOT / "cases").glob("*.toml")}


def test_examples_copy_is_checkable_and_runs(tmp_path, capsys):
    dest = tmp_path / "my cases"
    assert main(["examples", str(dest)]) == 0
    out = capsys.readouterr().out
    for name in example_files():
        assert (dest / name).read_bytes() == (ROOT / "cases" / name).read_bytes(), name
        if name.endswith(".toml"):
            verb = "sweep" if name.startswith("sweep_") else "run"  # sweep files (docs/sweep.md) name a case
            assert f"thermo {verb} {dest / name}" in out
    # every data file a case names resolves next to the copy (a sweep's base case too)
    for case in dest.glob("*.toml"):
        if case.name.startswith("sweep_"):
            from aidc_thermo.sweep import read_sweep

            assert read_sweep(case).case_path.parent == dest
        else:
            assert main(["check", str(case)]) == 0, case.name
    assert main(["run", str(dest / "slab.toml"), "-o", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / "summary.json").is_file()


def test_examples_never_overwrite(tmp_path, capsys):
    dest = tmp_path / "x"
    dest.mkdir()
    mine = dest / "slab.toml"
    mine.write_text("# my own edited slab\n")
    before = hashlib.sha256(mine.read_bytes()).hexdigest()
    assert main(["examples", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "slab.toml" in err and "nothing was copied" in err
    assert hashlib.sha256(mine.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in dest.iterdir()) == ["slab.toml"]


def test_examples_into_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    assert main(["examples", str(f)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert f.read_text() == "keep me"


@pytest.mark.parametrize("case", sorted(p.name for p in (ROOT / "cases").glob("*.toml")))
def test_case_files_cite_only_shipped_files(case):
    """Comments in a bundled case may point to sources, not to files a user does not have."""
    text = (ROOT / "cases" / case).read_text()
    tomllib.loads(text)
    assert "validation.md" not in text and "/work/" not in text
