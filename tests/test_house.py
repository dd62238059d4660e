"""The house as drawn (DESIGN.md, docs/architecture.md), read from the imports of the source:

1. one fusion path: nothing in ``web/`` or ``cohort/`` reaches ``msgfusion.methods`` (they call
   the public API: ``msgfusion.fuse``, ``fuse_many``, ``evaluate``, ``check_method``, ...);
2. pure metrics: ``metrics/`` imports no file reader or writer;
3. networks that know no trainer: nothing in ``methods/`` imports ``msgfusion.train``.

Every ``import`` counts, also those inside functions; a name taken from the package root
(``from msgfusion import get_method``) counts as the module that defines it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import msgfusion

SRC = Path(msgfusion.__file__).parent

#: What metrics/ may import from the package: itself, its errors, and the colour conversions
#: of io/color (luminance, 8-bit quantisation; it reads only its own packaged colour tables).
METRICS_MAY_IMPORT = ("msgfusion.metrics", "msgfusion.errors", "msgfusion.io.color")
#: Modules that read or write files: none of them in metrics/.
FILE_MODULES = ("PIL", "imageio", "nibabel", "pydicom", "SimpleITK", "csv", "pathlib", "shutil",
                "tempfile", "io", "pickle", "json", "sqlite3")


def imported_modules(source: str, module: str) -> set[str]:
    """The modules a source file imports (absolute names; relative imports resolved against
    ``module``; a name imported from the package root mapped to the module that defines it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: -node.level]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            for alias in node.names:
                if base == "msgfusion" and alias.name in msgfusion._PUBLIC:
                    found.add(msgfusion._PUBLIC[alias.name])
                else:
                    found.add(f"{base}.{alias.name}")
    return found


def calls_open(source: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
               for n in ast.walk(ast.parse(source)))


def sources(room: str) -> list[tuple[str, str]]:
    """(module name, source) of every file of a room of the package."""
    files = sorted((SRC / room).rglob("*.py"))
    assert files, f"no sources under {SRC / room}"
    return [(".".join(("msgfusion", *f.relative_to(SRC).with_suffix("").parts)), f.read_text())
            for f in files]


def violations(room: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for module, text in sources(room):
        for name in sorted(imported_modules(text, module)):
            if any(name == f or name.startswith(f + ".") for f in forbidden) and not any(
                    name == a or name.startswith(a + ".") for a in allowed):
                bad.append(f"{module} imports {name}")
    return bad


def test_web_and_cohort_never_reach_the_methods():
    assert violations("web", ("msgfusion.methods",)) == []
    assert violations("cohort", ("msgfusion.methods",)) == []
    assert violations("pacs", ("msgfusion.methods",)) == []


def test_metrics_touch_no_file():
    assert violations("metrics", ("msgfusion", *FILE_MODULES), METRICS_MAY_IMPORT) == []
    assert [m for m, text in sources("metrics") if calls_open(text)] == []


def test_methods_know_no_trainer():
    assert violations("methods", ("msgfusion.train",)) == []


@pytest.mark.parametrize("line, caught", [
    ("from msgfusion.methods.registry import get_method", "msgfusion.methods.registry"),
    ("from msgfusion import get_method", "msgfusion.methods.registry"),
    ("import msgfusion.methods", "msgfusion.methods"),
    ("from ..methods import registry", "msgfusion.methods.registry"),
    ("def f():\n    from msgfusion.methods.registry import fuse_pairs", "msgfusion.methods.registry"),
])
def test_the_reader_sees_every_form_of_import(line, caught):
    """The check cannot pass by an import written another way."""
    assert caught in imported_modules(line, "msgfusion.web.app")


def test_the_public_api_serves_the_clients():
    """What web/ and cohort/ call is public: named in ``msgfusion.__all__``."""
    for name in ("fuse", "fuse_many", "fuse_volume", "fuse_folder", "evaluate", "check_method",
                 "check_color", "method_fingerprint", "list_methods", "make_pair", "load_volume"):
        assert name in msgfusion.__all__ and callable(getattr(msgfusion, name))
