"""Mutation testing of the core modules; writes docs/testing.md.

    python benchmarks/mutation.py                       # sample, run, write docs/testing.md
    python benchmarks/mutation.py --per-module 60 --seed 1
    python benchmarks/mutation.py --list                # count the mutants only

A small purpose-built runner (mutmut 3 rewrites every function into trampolines and runs the whole
suite per mutant; too slow for 2 shared cores). For each core module it enumerates one-token
mutants from the AST (comparison boundaries and negations, + / -, * / /, and / or, dropped
``not`` and unary minus, number + 1, True / False, += / -=), draws a seeded sample, and for each
mutant writes the mutated file into a private snapshot of ``src/`` and ``tests/`` and runs that
module's targeted tests against it (``pytest -x`` in a process forked from one that has already
imported torch and numpy, with a timeout). A mutant is *killed* when the tests fail or time out,
*survived* when they pass. The working tree is never modified.

It also re-plants the seven bugs of issue 21 (one line each) and checks that the named test
catches each. The doc lists the kill rate per module, every survivor with a note where one was
judged (``NOTES``: equivalent mutants and the ones that do not matter), and the planted bugs.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTEST = ["-x", "-q", "-p", "no:cacheprovider"]

# module label -> (source files under src/msgfusion, targeted tests)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "io/color": (["io/color.py"], ["tests/io/test_color.py", "tests/io/test_color_standards.py"]),
    "pair": (["pair.py"], ["tests/test_pair.py", "tests/test_pair_arrays.py", "tests/test_api.py"]),
    "data/datasets": (["data/datasets.py"], ["tests/data"]),
    "metrics": (["metrics/*.py"], ["tests/metrics"]),
    "methods/registry": (["methods/registry.py"],
                         ["tests/methods/test_registry.py", "tests/methods/test_fuse_pairs.py",
                          "tests/test_api.py", "tests/bench/test_cache_invalidation.py"]),
    "methods/msgfusion": (["methods/msgfusion.py"],
                          ["tests/methods/test_msgfusion.py", "tests/methods/test_fingerprints.py",
                           "tests/model/test_pinned_outputs.py::test_spect_pairs_go_to_the_spect_network",
                           "tests/model/test_pinned_outputs.py::test_shipped_network_output_is_pinned[msgfusion]"]),
    "model": (["model/*.py"],
              ["tests/model/test_pinned_outputs.py::test_shipped_network_output_is_pinned[msgfusion]",
               "tests/model/test_model_pins.py", "tests/model/test_msgfusion_net.py",
               "tests/model/test_weights.py"]),
    "bench/runner": (["bench/runner.py"],
                     ["tests/bench/test_cache_invalidation.py", "tests/bench/test_report_pieces.py",
                      "tests/bench/test_bench.py"]),
}

# The bugs of issue 21: (label, file, original line fragment, mutated fragment, catching test).
PLANTED: list[tuple[str, str, str, str, str]] = [
    ("YCbCr luma row BT.709 instead of BT.601", "io/color.py",
     "[[0.299, 0.587, 0.114], [-0.168736", "[[0.2126, 0.7152, 0.0722], [-0.168736",
     "tests/io/test_color_standards.py"),
    ("V' = raw / 255 instead of per-image min-max", "io/color.py",
     "return ((raw - lo) / (hi - lo)).astype(np.float32)", "return (raw / 255.0).astype(np.float32)",
     "tests/io/test_color_standards.py::test_v_prime_is_min_max_normalised_per_image"),
    ("msgfusion.fuse() defaults to average", "api.py",
     "    method: str = DEFAULT_METHOD,\n    color", "    method: str = \"average\",\n    color",
     "tests/test_api.py::test_fuse_defaults_to_msgfusion_with_the_default_colour"),
    ("functional file without its MR not reported", "data/datasets.py",
     "        if no_mr:\n", "        if False and no_mr:\n",
     "tests/data/test_partners.py::test_functional_file_without_its_mr_is_reported"),
    ("benchmark cache ignores the fingerprint", "bench/runner.py",
     "if force or data.get(\"fingerprint\") != fingerprint or data.get(\"version\")",
     "if force or data.get(\"version\")",
     "tests/bench/test_cache_invalidation.py"),
    ("MsgFusion fingerprint_data returns nothing", "methods/msgfusion.py",
     "        \"\"\"The weights file: cached results follow retraining.\"\"\"\n",
     "        \"\"\"The weights file: cached results follow retraining.\"\"\"\n        return b\"\"\n",
     "tests/methods/test_fingerprints.py"),
    ("SF2 low/high-frequency mask inverted", "model/sf_branch.py",
     "low = (radius <= self.low_cutoff)", "low = (radius > self.low_cutoff)",
     "tests/model/test_pinned_outputs.py::test_shipped_network_output_is_pinned[msgfusion]"),
]

# Judged survivors: (file, mutation, start of the source line, why it survives or why it does
# not matter). An equivalent mutant computes the same function; no test can kill it.
NOTES: list[tuple[str, str, str, str]] = [
    ("io/color.py", "> -> >=", "h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)",
     "equivalent: where delta = 0 (a grey) the hue formula gives 0 already (safe divisor 1, "
     "equal channels), so both branches agree"),
    ("io/color.py", "1.0 -> 2.0", "t = np.linspace(0.0, len(table) - 1.0",
     "does not matter: the densely sampled colour-map curve then stops one table step short of "
     "its top, which moves a colour's distance to the curve by at most that step; the PET/SPECT "
     "decision has a margin of tens of units (`pair.SCALE_FIT`)"),
    ("pair.py", "<= -> <", "if distance[best] <= SCALE_FIT",
     "equivalent unless a mean distance is exactly 20.0"),
    ("pair.py", "False -> True", "meta: dict[str, Any] = field(default_factory=dict, compare=False)",
     "does not matter: FusionPair equality is not used (its array fields make == ambiguous "
     "either way)"),
    ("methods/registry.py", "True -> False", "_loaded = True",
     "equivalent for results: the built-in modules are imported again on every registry call, "
     "which Python answers from its module cache"),
    ("methods/registry.py", "16 -> 17", "batch_size: int = 16,",
     "equivalent for results: batching never changes a method's output (tested: batched "
     "fusion equals one pair at a time)"),
    ("methods/msgfusion.py", "4 -> 5", "chunk = 4",
     "equivalent for results: pairs per forward pass (speed only; batched output equals one "
     "pair at a time)"),
    ("model/gv_branch.py", "drop unary -", "parts.append(F.interpolate(h, size=x.shape[-2:]",
     "equivalent: on N x C x H x W tensors shape[2:] is shape[-2:]"),
    ("metrics/perceptual.py", "< -> <=", "q_af = np.where(ca < cf, ca / cf, cf / ca)",
     "equivalent: where ca == cf both branches are 1"),
    ("bench/runner.py", "* -> /", "total = len(config.methods) * sum(map(len, groups.values()))",
     "does not matter for results: the progress bar's total"),
    ("pair.py", "3 -> 4", "MsgFusionWarning, stacklevel=3)",
     "does not matter for results: the line the colour-CT warning is attributed to (the "
     "colour-MR warning's is tested in `tests/test_pair_arrays.py`)"),
    ("bench/runner.py", "1 -> 2", "tmp.write_text(json.dumps(self.data, indent=1",
     "equivalent for results: the indentation of the cache file"),
    ("pair.py", "2 -> 3", "if mr.shape[:2] != func.shape[:2]:",
     "equivalent on the MR side: the MR is 2-D there, so mr.shape[:3] == mr.shape[:2]"),
]


def note_for(m: Mutant) -> str:
    for file, what, start, note in NOTES:
        if m.file == file and m.what == what and m.source.startswith(start):
            return note
    return ""

_CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
             ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
             ast.In: ast.NotIn, ast.NotIn: ast.In}
_BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
             ast.FloorDiv: ast.Mult, ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}
_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
           ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+",
           ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Pow: "**",
           ast.Mod: "%", ast.And: "and", ast.Or: "or"}


@dataclass
class Mutant:
    file: str  # relative to src/msgfusion
    line: int
    source: str  # the original line, stripped
    what: str  # e.g. "< -> <="
    start: tuple[int, int]
    end: tuple[int, int]
    replacement: str
    status: str = ""
    seconds: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.file}:{self.source} :: {self.what}"


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _skipped(tree: ast.AST) -> set[int]:
    """Nodes not to mutate: docstrings, annotations, and everything inside them."""
    skip = _docstring_nodes(tree)
    for node in ast.walk(tree):
        ann = []
        if isinstance(node, (ast.AnnAssign, ast.arg)):
            ann.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            ann.append(node.returns)
        for a in ann:
            if a is not None:
                skip |= {id(n) for n in ast.walk(a)}
    return skip


def _variants(node: ast.AST) -> list[tuple[str, ast.AST]]:
    """(description, mutated copy of ``node``) for each one-token mutation of ``node``."""
    out: list[tuple[str, ast.AST]] = []

    def copy() -> ast.AST:
        return ast.parse(ast.unparse(node), mode="eval").body

    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _CMP_SWAP:
                new = copy()
                new.ops[i] = _CMP_SWAP[type(op)]()
                out.append((f"{_SYMBOL[type(op)]} -> {_SYMBOL[_CMP_SWAP[type(op)]]}", new))
    elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
        new = copy()
        new.op = _BIN_SWAP[type(node.op)]()
        out.append((f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[_BIN_SWAP[type(node.op)]]}", new))
    elif isinstance(node, ast.BoolOp):
        new = copy()
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append((f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[type(new.op)]}", new))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        out.append(("drop not" if isinstance(node.op, ast.Not) else "drop unary -",
                    ast.parse(ast.unparse(node.operand), mode="eval").body))
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        out.append((f"{node.value} -> {not node.value}", ast.Constant(not node.value)))
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        out.append((f"{node.value!r} -> {node.value + 1!r}", ast.Constant(node.value + 1)))
    return out


def enumerate_mutants(rel: str, text: str) -> list[Mutant]:
    tree = ast.parse(text)
    skip = _skipped(tree)
    lines = text.splitlines()
    mutants = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        if isinstance(node, ast.AugAssign) and type(node.op) in (ast.Add, ast.Sub):
            # mutate the statement's operator: rewrite the whole statement on its line
            new = ast.AugAssign(node.target, ast.Sub() if isinstance(node.op, ast.Add) else ast.Add(),
                                node.value)
            what = "+= -> -=" if isinstance(node.op, ast.Add) else "-= -> +="
            variants = [(what, new)]
        else:
            variants = _variants(node)
        for what, new in variants:
            mutants.append(Mutant(rel, node.lineno, lines[node.lineno - 1].strip(), what,
                                  (node.lineno, node.col_offset),
                                  (node.end_lineno, node.end_col_offset),  # type: ignore[arg-type]
                                  ast.unparse(new)))
    return mutants


def apply(text: str, m: Mutant) -> str:
    lines = text.splitlines(keepends=True)
    (l0, c0), (l1, c1) = m.start, m.end
    before = "".join(lines[: l0 - 1]) + lines[l0 - 1][:c0]
    after = lines[l1 - 1][c1:] + "".join(lines[l1:])
    replacement = m.replacement
    if "\n" in text[len(before): len(text) - len(after)] and not replacement.startswith("("):
        replacement = f"({replacement})"  # a multi-line expression becomes one line
    return before + replacement + after


def module_files(patterns: list[str]) -> list[str]:
    root = REPO / "src" / "msgfusion"
    files: list[str] = []
    for pat in patterns:
        files += sorted(p.relative_to(root).as_posix() for p in root.glob(pat)
                        if p.name != "__init__.py" or "*" not in pat)
    return files


def preload() -> None:
    """Import the heavy libraries once, in the parent: every mutant's test run is a fork of it
    (with a fresh ``msgfusion`` from the mutated copy), which saves the seconds of importing torch
    per mutant."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import pytest  # noqa: F401
    import pywt  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import scipy.signal  # noqa: F401
    import torch  # noqa: F401

    assert "msgfusion" not in sys.modules, "the runner must not import msgfusion itself"


def _fork_pytest(repo: Path, tests: list[str]) -> int:
    """Fork a child that runs pytest on ``repo`` (a copy) with all output discarded; its pid."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.chdir(repo)
            sys.path[:] = [str(repo / "src")] + [p for p in sys.path
                                                  if Path(p or ".").resolve() != REPO / "src"]
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            import pytest

            code = int(pytest.main(PYTEST + tests))
        finally:
            os._exit(code)
    return pid


def _status(wait_status: int) -> str:
    code = os.waitstatus_to_exitcode(wait_status)
    return {0: "survived", 1: "killed"}.get(code, f"error {code}")


@dataclass
class Task:
    """Write ``text`` to ``rel`` (under src/msgfusion) in a copy, run ``tests``, restore."""

    rel: str
    text: str
    tests: list[str]
    timeout: float
    status: str = ""
    seconds: float = 0.0


def run_tasks(tasks: list[Task], repos: list[Path], on_done) -> None:  # type: ignore[no-untyped-def]
    """Run the tasks, one per copy in ``repos`` at a time; ``on_done(task)`` as each ends."""
    pending = list(tasks)
    running: dict[int, tuple[Task, Path, str, float, int]] = {}  # slot -> task, file, original,
    # start, pid
    while pending or running:
        for slot, repo in enumerate(repos):
            if slot not in running and pending:
                task = pending.pop(0)
                path = repo / "src" / "msgfusion" / task.rel
                original = path.read_text()
                path.write_text(task.text)
                pid = _fork_pytest(repo, task.tests)
                running[slot] = (task, path, original, time.perf_counter(), pid)
        time.sleep(0.05)
        for slot, (task, path, original, start, pid) in list(running.items()):
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if not done and time.perf_counter() - start > task.timeout:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                task.status = "timeout"
            elif done:
                task.status = _status(wait_status)
            else:
                continue
            task.seconds = time.perf_counter() - start
            path.write_text(original)
            del running[slot]
            on_done(task)


def run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """Run ``tests`` once, unmutated, against ``repo``; (status, seconds)."""
    start = time.perf_counter()
    pid = _fork_pytest(repo, tests)
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            return _status(wait_status), time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start
        time.sleep(0.05)


@dataclass
class ModuleReport:
    label: str
    tests: list[str]
    total: int
    baseline_s: float
    mutants: list[Mutant] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(m.status in statuses for m in self.mutants)


def mutate_module(label: str, per_module: int, seed: int, repos: list[Path], log,
                  previous: list[Logged] | None = None) -> ModuleReport:  # type: ignore[no-untyped-def]
    """Run a seeded sample of the module's mutants (the sample depends only on the seed, the
    module's label and its sources). ``previous``: the same sample from an earlier run's log;
    its killed mutants are kept, the others run again."""
    patterns, tests = MODULES[label]
    src_root = repos[0] / "src" / "msgfusion"
    pool: list[Mutant] = []
    for rel in module_files(patterns):
        pool += enumerate_mutants(rel, (src_root / rel).read_text())
    status, baseline = run_tests(repos[0], tests, timeout=900)
    if status != "survived":
        log(f"{label}: skipped, the targeted tests fail without any mutation ({status})")
        return ModuleReport(label, tests, len(pool), baseline)
    rng = random.Random(f"{seed}:{label}")
    sample = sorted(rng.sample(pool, min(per_module, len(pool))), key=lambda m: (m.file, m.line))
    report = ModuleReport(label, tests, len(pool), baseline, sample)
    log(f"{label}: {len(sample)} of {len(pool)} mutants, tests take {baseline:.1f} s unmutated")
    # the log lists mutants as they finished (in any order with --jobs): match them by place
    # and mutation; a place with two alike mutants whose results differ runs again
    earlier: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for status, seconds, where, what in previous or []:
        earlier.setdefault((where, what), []).append((status, seconds))
    keys = sorted((f"{m.file}:{m.line}", m.what) for m in sample)
    if previous is not None and sorted(p[2:] for p in previous) != keys:
        log(f"{label}: the sources changed since the logged run; every mutant runs again")
        earlier = {}

    def line(m: Mutant) -> str:
        return f"  {m.status:8s} {m.seconds:5.1f} s  {m.file}:{m.line}  {m.what}  | {m.source[:70]}"

    tasks: dict[int, Mutant] = {}
    for m in sample:
        logged = earlier.get((f"{m.file}:{m.line}", m.what), [])
        if logged and len({status for status, _ in logged}) == 1 and \
                logged[0][0] in ("killed", "timeout", "invalid"):
            m.status, m.seconds = logged[0]
            log(line(m))
            continue
        mutated = apply((src_root / m.file).read_text(), m)
        try:
            compile(mutated, m.file, "exec")
        except SyntaxError:
            m.status = "invalid"
            continue
        tasks[id(task := Task(m.file, mutated, tests, 3 * baseline + 30))] = m
        m.task = task  # type: ignore[attr-defined]

    def done(task: Task) -> None:
        m = tasks[id(task)]
        m.status, m.seconds = task.status, task.seconds
        log(line(m))

    run_tasks([m.task for m in tasks.values()], repos, done)  # type: ignore[attr-defined]
    return report


Logged = tuple[str, float, str, str]  # status, seconds, "file:line", mutation


def read_log(path: Path) -> dict[str, list[Logged]]:
    """The mutants per module, in sample order, from an earlier run's log."""
    modules: dict[str, list[Logged]] = {}
    current = None
    for line in path.read_text().splitlines():
        if (head := re.match(r"^(\S+): \d+ of \d+ mutants", line)):
            current = modules.setdefault(head.group(1), [])
        elif current is not None and (row := re.match(r"^  (\S+)\s+([\d.]+) s  (\S+)  (.+?)  \| ",
                                                     line)):
            current.append((row.group(1), float(row.group(2)), row.group(3), row.group(4)))
    return modules


PROVENANCE: list[str] = []


def render_log(path: Path) -> tuple[list[ModuleReport], list[tuple[str, str, str, str]], float]:
    """Module reports, planted-bug rows and minutes as a finished run logged them."""
    reports: list[ModuleReport] = []
    planted = {}
    minutes = float("nan")
    for line in path.read_text().splitlines():
        if line.startswith("# "):  # the log's own note on how it was made
            PROVENANCE.append(line[2:])
        elif line.startswith("planted: "):
            status, label = re.match(r"planted: (caught \(timeout\)|NOT caught \(.*?\)|\S+)\s+(.*)$",
                                     line).groups()  # type: ignore[union-attr]
            planted[label] = status
        elif (head := re.match(r"^(\S+): \d+ of (\d+) mutants, tests take ([\d.]+) s", line)):
            label = head.group(1)
            reports.append(ModuleReport(label, MODULES[label][1], int(head.group(2)),
                                        float(head.group(3))))
        elif (row := re.match(r"^  (\S+)\s+([\d.]+) s  (\S+):(\d+)  (.+?)  \| (.*)$", line)):
            status, secs, file, lineno, what, source = row.groups()
            reports[-1].mutants.append(Mutant(file, int(lineno), source, what, (0, 0), (0, 0), "",
                                              status, float(secs)))
        elif (done := re.match(r"^done in ([\d.]+) min", line)):
            minutes = float(done.group(1))
    rows = []
    for label, rel, old, new, test in PLANTED:
        change = f"`{old.strip()}` → `{new.strip()}`".replace("\n", " ").replace("|", "\\|")
        rows.append((label, f"{rel}: {change}", f"`{test}`", planted.get(label, "not run")))
    return reports, rows, minutes


def check_planted(repos: list[Path], log) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    """Re-plant each bug of :data:`PLANTED` in a copy and run the test that must catch it."""
    rows: dict[int, tuple[str, str, str, str]] = {}
    tasks: dict[int, tuple[int, str, str, str, Task]] = {}
    for k, (label, rel, old, new, test) in enumerate(PLANTED):
        change = f"`{old.strip()}` → `{new.strip()}`".replace("\n", " ").replace("|", "\\|")
        original = (repos[0] / "src" / "msgfusion" / rel).read_text()
        if original.count(old) != 1:
            rows[k] = (label, rel, f"`{old.strip()}` not found once", "n/a")
            continue
        task = Task(rel, original.replace(old, new), [test], 600)
        tasks[id(task)] = (k, label, f"{rel}: {change}", f"`{test}`", task)

    def done(task: Task) -> None:
        k, label, change, test = tasks[id(task)][:4]
        caught = {"killed": "caught", "timeout": "caught (timeout)"}.get(
            task.status, f"NOT caught ({task.status})")
        log(f"planted: {caught:8s} {label}")
        rows[k] = (label, change, test, caught)

    run_tasks([t[4] for t in tasks.values()], repos, done)
    return [rows[k] for k in sorted(rows)]


def write_doc(reports: list[ModuleReport], planted: list[tuple[str, str, str, str]], args,
              minutes: float, path: Path) -> None:  # type: ignore[no-untyped-def]
    def rate(r: ModuleReport) -> float:
        valid = r.count("killed", "timeout", "survived")
        return 100.0 * r.count("killed", "timeout") / valid if valid else float("nan")

    test_minutes = sum(m.seconds for r in reports for m in r.mutants) / 60
    cmd = "python benchmarks/mutation.py"
    if args.per_module != 15 or args.seed != 0:
        cmd += f" --per-module {args.per_module} --seed {args.seed}"
    md = ["# Testing: planted bugs and mutation score", "",
          f"Generated by `{cmd}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
          + (f"({minutes:.0f} min on a 2-core machine shared with other jobs)" if minutes == minutes
             else "(on a 2-core machine shared with other jobs)") + "; do not edit by hand.", ""]
    if args.render:
        md += [f"Rendered from the log `{args.render.as_posix()}` with the notes on survivors "
               "that `benchmarks/mutation.py` holds now (`python benchmarks/mutation.py --render "
               f"{args.render.as_posix()}`). {' '.join(PROVENANCE)}", ""]
    if args.from_log:
        md += ["This run re-used an earlier full run of the same sample (its log, "
               f"`{args.from_log.name}`): mutants that run killed are kept as killed; every "
               "mutant that survived it, and every mutant of a module whose sources changed "
               "since, was run against the tests as they are now (tests were added for "
               "survivors in between).", ""]
    md += [
          "## Planted bugs", "",
          "The bugs of issue 21, each a one-line change the suite once missed, re-planted one at "
          "a time in a copy of `src/`; the named test must fail.", "",
          "| bug | mutation (src/msgfusion/...) | test that catches it | result |",
          "|---|---|---|---|"]
    md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in planted]
    md += ["", "## Mutation score per core module", "",
           "One-token mutants (comparison boundary or negation, + / -, * / /, and / or, dropped "
           "`not` or unary minus, number + 1, True / False, += / -=) of every line except "
           f"docstrings and annotations; a seeded sample (seed {args.seed}) of at most "
           f"{args.per_module} per module, each run against the module's targeted tests "
           "(`pytest -x`; a timeout, 3x the unmutated run + 30 s, counts as killed). Goal: "
           "85 % killed; \"without equivalents\" leaves out the survivors judged equivalent "
           f"below (no test can kill them). The mutants' test runs took {test_minutes:.0f} min in all.", "",
           "| module | sampled / all mutants | killed | timeout | survived (equivalent) | invalid "
           "| kill rate | without equivalents | targeted tests |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        mark = "" if rate(r) >= 85 else " (below goal)"
        equivalent = sum(m.status == "survived" and note_for(m).startswith("equivalent")
                         for m in r.mutants)
        killed = r.count("killed", "timeout")
        valid = r.count("killed", "timeout", "survived") - equivalent
        md.append(f"| {r.label} | {len(r.mutants)} / {r.total} | {r.count('killed')} | "
                  f"{r.count('timeout')} | {r.count('survived')} ({equivalent}) | "
                  f"{r.count('invalid')} | {rate(r):.0f} %{mark} | "
                  f"{100 * killed / valid if valid else float('nan'):.0f} % | "
                  f"{', '.join(f'`{t}`' for t in r.tests)} |")
    valid = sum(r.count("killed", "timeout", "survived") for r in reports)
    killed = sum(r.count("killed", "timeout") for r in reports)
    if valid:
        md += ["", f"Overall: {killed} of {valid} valid mutants killed "
                   f"({100 * killed / valid:.0f} %)."]
    md += ["", "## Surviving mutants", "",
           "Every survivor of the sample; the note says why it survives where that was judged "
           "(an equivalent mutant cannot be killed by any test).", ""]
    for r in reports:
        survivors = [m for m in r.mutants if m.status == "survived"]
        if not survivors:
            continue
        md += [f"### {r.label}", "", "| where | mutation | line | note |", "|---|---|---|---|"]
        for m in survivors:
            src = m.source.replace("|", "\\|")
            if len(src) > 90:
                src = src[:87] + "..."
            md.append(f"| {m.file}:{m.line} | `{m.what}` | `{src}` | {note_for(m)} |")
        md.append("")
    path.write_text("\n".join(md) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-module", type=int, default=15, help="mutants sampled per module")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once")
    parser.add_argument("--modules", nargs="+", choices=list(MODULES), default=list(MODULES))
    parser.add_argument("--list", action="store_true", help="count the mutants and exit")
    parser.add_argument("--no-planted", action="store_true", help="skip the planted bugs")
    parser.add_argument("--from-log", type=Path, metavar="LOG",
                        help="an earlier run's output (same seed, sample size and sources): keep "
                             "its killed mutants, re-run its survivors against today's tests")
    parser.add_argument("--render", type=Path, metavar="LOG",
                        help="only write the doc from a finished run's log (with today's notes)")
    parser.add_argument("-o", "--output", default=str(REPO / "docs" / "testing.md"))
    args = parser.parse_args(argv)
    if args.list:
        for label in args.modules:
            root = REPO / "src" / "msgfusion"
            n = sum(len(enumerate_mutants(rel, (root / rel).read_text()))
                    for rel in module_files(MODULES[label][0]))
            print(f"{label}: {n} mutants")
        return 0
    if args.render:
        reports, planted, minutes = render_log(args.render)
        write_doc(reports, planted, args, minutes, Path(args.output))
        print(f"wrote {args.output}")
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="msgfusion-mutants-") as tmp:
        work = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".hypothesis")
        repos = [work / f"repo{k}" for k in range(args.jobs)]
        for repo in repos:  # snapshots: later edits of the tree do not leak in
            for part in ("src", "tests"):
                shutil.copytree(REPO / part, repo / part, ignore=ignore)
            shutil.copy(REPO / "pyproject.toml", repo)
        (work / "shared").symlink_to((REPO.parent / "shared").resolve())  # ../shared
        preload()

        def log(line: str) -> None:
            print(line, flush=True)

        previous = read_log(args.from_log) if args.from_log else {}
        planted = [] if args.no_planted else check_planted(repos, log)
        reports = [mutate_module(label, args.per_module, args.seed, repos, log,
                                 previous.get(label) if args.from_log else None)
                   for label in args.modules]
    minutes = (time.perf_counter() - start) / 60
    print(f"done in {minutes:.1f} min", flush=True)
    write_doc(reports, planted, args, minutes, Path(args.output))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
