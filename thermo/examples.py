"""The bundled example cases, installed with the package (``thermo examples DIR``).

In a source checkout they are the repository's ``cases/`` folder; an installed
package carries the same files as its ``cases`` subpackage (pyproject.toml
maps one onto the other). Case files name their data files relative to
themselves (``data/weather_temperate.csv``), so the folder is copied whole.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

__all__ = ["ExamplesError", "copy_examples", "example_files"]

_SKIP = {"__init__.py", "__pycache__"}


class ExamplesError(Exception):
    """The destination cannot take the examples (the message says why)."""


def _root():
    return importlib.resources.files(f"{__package__}.cases")


def example_files() -> list[str]:
    """Relative paths of every bundled file (case files and their data), sorted."""
    found: list[str] = []

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.name in _SKIP or child.name.endswith(".pyc"):
                continue
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, rel + "/")
            else:
                found.append(rel)

    walk(_root(), "")
    return sorted(found)


def copy_examples(dest: str | Path) -> list[Path]:
    """Copy the bundled cases and their data into ``dest`` (created if missing).

    Refuses, before copying anything, when ``dest`` is a file or when any file
    it would write already exists: a user's edited copy is never overwritten.
    Returns the paths written.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ExamplesError(f"{dest} exists and is not a folder; name a new or existing folder")
    names = example_files()
    clashes = [n for n in names if (dest / n).exists()]
    if clashes:
        shown = ", ".join(clashes[:4]) + (f" and {len(clashes) - 4} more" if len(clashes) > 4 else "")
        raise ExamplesError(f"{dest} already holds {shown}; nothing was copied (choose an empty or new folder)")
    root = _root()
    written = []
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with importlib.resources.as_file(root.joinpath(*name.split("/"))) as src:
            shutil.copyfile(src, target)
        written.append(target)
    return written
