"""Commands that answer at once: listing, help and an early input error load no heavy library.

Structural, not timed: each command runs in a fresh interpreter, which then reports which of the
slow-to-import libraries (torch about 1.5 s, scipy, matplotlib, SimpleITK, FastAPI, Dask) it
loaded. Importing one of them at the top of a CLI module, the package or the registry fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "scipy", "matplotlib", "SimpleITK", "fastapi", "dask", "pywt", "pandas")

PROBE = """
import contextlib, io, json, sys
from msgfusion.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def run_cli(*argv: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ("--help",),
    ("methods",),
    ("fuse", "--help"),
    ("fuse", "--mr", "no-such-mr.png", "--func", "no-such-pet.png", "-o", "out.png"),
    ("fuse-dir", "no-such-folder", "-o", "out"),
])
def test_command_loads_no_heavy_library(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(*argv)
    assert result["heavy"] == [], f"msgfusion {' '.join(argv)} imported {result['heavy']}"
    assert result["code"] == (0 if argv[-1] == "--help" or argv == ("methods",) else 2)


def test_import_msgfusion_is_light_and_names_load_on_use():
    code = ("import sys, msgfusion; before = 'numpy' in sys.modules; f = msgfusion.fuse; "
            "print(before, 'numpy' in sys.modules, 'torch' in sys.modules, callable(f))")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    assert out == ["False", "True", "False", "True"]
