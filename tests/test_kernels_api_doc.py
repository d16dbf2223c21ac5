"""docs/kernels-api.md names every public name of every kernel module: each
name in a module's ``__all__`` appears (in backticks) in the section of that
module, or of the nearest enclosing package that has a section."""

import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path

import aidc_thermo.kernels as kernels

DOC = Path(__file__).resolve().parents[1] / "docs" / "kernels-api.md"


def kernel_modules():
    yield kernels
    for info in pkgutil.walk_packages(kernels.__path__, prefix=kernels.__name__ + "."):
        yield importlib.import_module(info.name)


def sections(text: str) -> dict[str, str]:
    """``{module name: text of its section}`` from the ``## `module` `` headings."""
    parts = re.split(r"^## `([\w.]+)`\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def section_for(name: str, secs: dict[str, str]) -> str | None:
    owners = [m for m in secs if name == m or name.startswith(m + ".")]
    return secs[max(owners, key=len)] if owners else None


def test_every_public_kernel_name_is_in_the_api_reference():
    text = DOC.read_text(encoding="utf-8")
    secs = sections(text)
    missing, checked = [], 0
    for mod in kernel_modules():
        public = getattr(mod, "__all__", None)
        if public is None:
            continue
        assert f"`{mod.__name__}`" in text, f"{mod.__name__} is not named in {DOC.name}"
        sec = section_for(mod.__name__, secs)
        assert sec is not None, f"no section in {DOC.name} covers {mod.__name__}"
        for name in public:
            checked += 1
            if not re.search(r"`" + re.escape(name) + r"[`(]", sec):
                missing.append(f"{mod.__name__}.{name}")
    assert not missing, f"missing from {DOC.name}: {missing}"
    assert checked > 150  # 178 names today, re-exports counted again


def test_every_field_of_a_documented_pytree_is_in_its_row():
    # Classes with a table row list their fields there (inherited SolveInfo
    # fields are covered by naming SolveInfo).
    lines = DOC.read_text(encoding="utf-8").splitlines()
    inherited = {f.name for f in dataclasses.fields(kernels.SolveInfo)}
    missing, rows = [], 0
    for mod in kernel_modules():
        for name in getattr(mod, "__all__", None) or []:
            obj = getattr(mod, name)
            if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)) or obj is kernels.SolveInfo:
                continue
            row = " ".join(ln for ln in lines if re.match(r"\| `" + re.escape(name) + r"[`(]", ln))
            if not row:
                continue
            rows += 1
            for f in dataclasses.fields(obj):
                if f.name.startswith("_") or (f.name in inherited and "SolveInfo" in row):
                    continue
                if not re.search(r"\b" + re.escape(f.name) + r"\b", row):
                    missing.append(f"{mod.__name__}.{name}.{f.name}")
    assert not missing, f"fields missing from their rows in {DOC.name}: {missing}"
    assert rows > 30


def test_the_check_finds_a_missing_name():
    # The matcher is not vacuous: a section without a name does not pass for it.
    secs = sections("## `aidc_thermo.kernels.plant.psychro`\n\n| `wet_bulb(t_db, rh, p)` | K |\n")
    sec = section_for("aidc_thermo.kernels.plant.psychro", secs)
    assert re.search(r"`wet_bulb[`(]", sec)
    assert not re.search(r"`wet_bulb_from_humidity_ratio[`(]", sec)
    assert section_for("aidc_thermo.kernels.fv.flow", secs) is None
