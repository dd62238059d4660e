"""The benchmark runner: every method on every pair, every metric, cached on disk.

Layout of the results folder (which is also the cache)::

    fused/<method>/<CT-MRI|PET-MRI|SPECT-MRI>/<name>.png   fused images as a user gets them
    cache/<method>.json                                      fingerprint, metric values, timing

Each method is timed on the first pair of every modality pair (MsgFusion runs a different network
for each), so the runtime table reports time, parameters and multiply-adds per modality pair.

A method's cache is valid while its fingerprint (source, weights, colour mode and colour code) is
unchanged; a re-run only computes what is missing or stale, ``force`` recomputes everything. A
method that fails on a pair is recorded with the reason and the run goes on with the others; so
is a pair that cannot be read (recorded once under the method name ``input``, and left out of
every method's results).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from msgfusion.bench.config import BenchConfig
from msgfusion.bench.timing import MethodCost, measure_cost
from msgfusion.data.datasets import PairFolder, find_pair_folders
from msgfusion.errors import DatasetError, MsgFusionError
from msgfusion.io import color as color_module
from msgfusion.io.color import restore_color
from msgfusion.io.files import write_text
from msgfusion.io.images import read_image, write_image
from msgfusion.methods.registry import FusionMethod, fuse_pairs, get_method, list_methods
from msgfusion import metrics as metrics_package
from msgfusion.metrics import METRICS, evaluate_images
from msgfusion.pair import FusionPair
from msgfusion.progress import progress_bar

CACHE_VERSION = 1
T = TypeVar("T")


@dataclass
class Failure:
    method: str
    pair: str  # "<group>/<name>", or "*" when the method could not run at all
    reason: str


@dataclass
class BenchResult:
    """Everything a report needs: per-image metric records, costs, and what happened."""

    config: BenchConfig
    groups: list[str]
    records: list[dict] = field(default_factory=list)  # method, group, image, <metric>: value
    costs: dict[str, dict[str, MethodCost]] = field(default_factory=dict)  # method -> group ->
    failures: list[Failure] = field(default_factory=list)
    computed: dict[str, int] = field(default_factory=lambda: {"fused": 0, "evaluated": 0, "timed": 0})
    cached: dict[str, int] = field(default_factory=lambda: {"fused": 0, "evaluated": 0, "timed": 0})

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.records))

    @property
    def metrics(self) -> list[str]:
        return self.config.metrics


def group_name(folder: PairFolder) -> str:
    """The modality pair of a folder, e.g. ``PET-MRI``; the unit of every table."""
    return f"{folder.modality}-MRI"


#: The method name under which unreadable pairs are reported.
INPUT = "input"


def _load_folders(config: BenchConfig, failures: list[Failure]) -> dict[str, list[FusionPair]]:
    """Every readable pair by group; a pair that cannot be read is a :class:`Failure`."""
    folders = find_pair_folders(config.data, split=config.split, check_sizes=False)
    groups: dict[str, list[FusionPair]] = {}
    for folder in folders:
        name = group_name(folder)
        if name in groups:
            raise DatasetError(f"{config.data}: two folders of {name} pairs; benchmark one at a time")
        bad = folder.problems()
        groups[name] = []
        for i, files in enumerate(folder.files):
            try:
                if i in bad:
                    raise DatasetError(bad[i])
                groups[name].append(folder[i])
            except MsgFusionError as exc:
                failures.append(Failure(INPUT, f"{name}/{files.stem}", str(exc)))
    return groups


def color_fingerprint() -> str:
    """A hash of the colour restoration code: the cached fused images are restored with it, so a
    new colour rule invalidates them like new weights do."""
    return hashlib.sha256(Path(color_module.__file__).read_bytes()).hexdigest()[:16]


def metrics_fingerprint() -> str:
    """A hash of the metric implementations: cached metric values are dropped when it changes."""
    root = Path(metrics_package.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class _MethodCache:
    """The JSON cache of one method: fingerprints, metric values per image, timing."""

    def __init__(self, out: Path, method: str, fingerprint: str, force: bool) -> None:
        self.path = out / "cache" / f"{method}.json"
        self.fused_dir = out / "fused" / method
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        if force or data.get("fingerprint") != fingerprint or data.get("version") != CACHE_VERSION:
            shutil.rmtree(self.fused_dir, ignore_errors=True)
            data = {}
        metrics_fp = metrics_fingerprint()
        if data.get("metrics_fingerprint") != metrics_fp:
            data.pop("metrics", None)
        self.data = {"version": CACHE_VERSION, "fingerprint": fingerprint,
                     "metrics_fingerprint": metrics_fp, "metrics": data.get("metrics", {}),
                     "costs": data.get("costs", {})}

    def fused_path(self, group: str, name: str) -> Path:
        return self.fused_dir / group / f"{name}.png"

    def save(self) -> None:
        write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True), overwrite=True)


def _reason(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _map(executor: Executor | None, fn: Callable[..., T], *iterables: Sequence) -> Iterator[T]:
    """``fn`` over the iterables, results in order: on the executor's workers if one is given
    (e.g. a Dask client's ``get_executor()``), else here."""
    return executor.map(fn, *iterables) if executor is not None else map(fn, *iterables)


def _fuse_batch(name: str, batch: list[FusionPair], paths: list[Path], color: str,
                batch_size: int) -> list[str | None]:
    """Fuse a batch with the named method and write each picture; per pair the failure
    reason, or ``None`` when written. A failing batch is fused pair by pair to isolate the
    failing pairs."""
    method = get_method(name)
    try:
        fused: list = fuse_pairs(method, batch, batch_size)
    except Exception:
        fused = []
        for p in batch:
            try:
                fused.extend(fuse_pairs(method, [p]))
            except Exception as exc:
                fused.append(_reason(exc))
    reasons: list[str | None] = []
    for p, f, path in zip(batch, fused, paths):
        if isinstance(f, str):
            reasons.append(f)
        else:
            write_image(path, restore_color(f, p.func, color), overwrite=True)
            reasons.append(None)
    return reasons


def _fuse_missing(method: FusionMethod, cache: _MethodCache, group: str, pairs: list[FusionPair],
                  config: BenchConfig, result: BenchResult, tick: Callable[[int], None],
                  executor: Executor | None) -> None:
    todo = [p for p in pairs if not cache.fused_path(group, p.name).exists()]
    result.cached["fused"] += len(pairs) - len(todo)
    tick(len(pairs) - len(todo))
    size = config.batch_size
    batches = [todo[start : start + size] for start in range(0, len(todo), size)]
    paths = [[cache.fused_path(group, p.name).absolute() for p in b] for b in batches]
    n = len(batches)
    for batch, reasons in zip(batches, _map(executor, _fuse_batch, [method.name] * n, batches,
                                            paths, [config.color] * n, [size] * n)):
        for p, reason in zip(batch, reasons):
            if reason is None:
                result.computed["fused"] += 1
            else:
                result.failures.append(Failure(method.name, f"{group}/{p.name}", reason))
        tick(len(batch))


def _score(pair: FusionPair, path: Path, metrics: list[str]) -> dict[str, float] | str:
    """The metrics of a fused picture, or the failure reason."""
    try:
        return evaluate_images(pair.mr, pair.func, read_image(path), metrics)
    except Exception as exc:
        return f"metrics: {_reason(exc)}"


def _evaluate(cache: _MethodCache, method: str, group: str, pairs: list[FusionPair],
              config: BenchConfig, result: BenchResult, executor: Executor | None) -> None:
    present = [p for p in pairs if cache.fused_path(group, p.name).exists()]
    stored = {p.name: cache.data["metrics"].setdefault(f"{group}/{p.name}", {}) for p in present}
    todo = [p for p in present if any(m not in stored[p.name] for m in config.metrics)]
    missing = [[m for m in config.metrics if m not in stored[p.name]] for p in todo]
    paths = [cache.fused_path(group, p.name).absolute() for p in todo]
    scored = dict(zip((p.name for p in todo), _map(executor, _score, todo, paths, missing)))
    for p in present:
        key = f"{group}/{p.name}"
        values = scored.get(p.name)
        if isinstance(values, str):
            result.failures.append(Failure(method, key, values))
            continue
        if values is None:
            result.cached["evaluated"] += 1
        else:
            stored[p.name].update(values)
            result.computed["evaluated"] += 1
        result.records.append({"method": method, "group": group, "image": p.name,
                               **{m: stored[p.name][m] for m in config.metrics}})


def run_bench(config: BenchConfig, progress: bool = True,
              executor: Executor | None = None) -> BenchResult:
    """Fuse, evaluate and time every configured method on every pair; see the module doc.

    ``executor`` (e.g. a Dask client's ``get_executor()``) spreads the fusion of each batch and
    the evaluation of each pair over its workers, which must see the results folder; timing
    always runs here, so that every method is timed alike."""
    if not config.methods:
        config.methods = [m.name for m in list_methods()]
    if not config.metrics:
        config.metrics = list(METRICS)
    unknown = [m for m in config.metrics if m not in METRICS]
    if unknown:
        raise DatasetError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(METRICS)}")
    for name in config.methods:  # fail fast on a typo, before any work
        get_method(name)
    failures: list[Failure] = []
    groups = _load_folders(config, failures)
    if not any(groups.values()):
        raise DatasetError(f"{config.data}: no readable pair ({len(failures)} unreadable; first: "
                           f"{failures[0].reason if failures else 'none found'})")
    result = BenchResult(config=config, groups=list(groups), failures=failures)
    out = config.out_dir
    total = len(config.methods) * sum(map(len, groups.values()))
    with progress_bar(total=total, desc="bench", unit="pair", enabled=progress) as bar:
        for name in config.methods:
            bar.set_postfix_str(name)
            try:
                method = get_method(name)
                fingerprint = f"{method.fingerprint()}:{config.color}:{color_fingerprint()}"
                cache = _MethodCache(out, name, fingerprint, config.force)
            except Exception as exc:
                result.failures.append(Failure(name, "*", _reason(exc)))
                bar.update(sum(map(len, groups.values())))
                continue
            for group, pairs in groups.items():
                _fuse_missing(method, cache, group, pairs, config, result, bar.update, executor)
                _evaluate(cache, name, group, pairs, config, result, executor)
            costs = cache.data["costs"]
            for group, pairs in groups.items():
                if group in costs:
                    result.cached["timed"] += 1
                    continue
                if not pairs:  # every pair of the group was unreadable
                    continue
                try:
                    costs[group] = asdict(measure_cost(method, pairs[0], config.timing_repeats))
                    result.computed["timed"] += 1
                except Exception as exc:
                    result.failures.append(Failure(name, f"{group}/timing", _reason(exc)))
            result.costs[name] = {g: MethodCost(**costs[g]) for g in groups if g in costs}
            cache.save()
    return result


def summary_lines(result: BenchResult) -> list[str]:
    """What was computed, what was cached, which method failed on which pair and why."""
    c, k = result.computed, result.cached
    lines = [
        f"methods: {len(result.config.methods)}, pairs: "
        + ", ".join(f"{g}" for g in result.groups)
        + f", metrics: {len(result.config.metrics)}",
        f"fused: {c['fused']} computed, {k['fused']} cached; evaluated: {c['evaluated']} computed, "
        f"{k['evaluated']} cached; timed: {c['timed']} computed, {k['timed']} cached",
    ]
    if result.failures:
        lines.append(f"{len(result.failures)} failure(s):")
        lines += [f"  {f.method} on {f.pair}: {f.reason}" for f in result.failures]
    else:
        lines.append("no failures")
    return lines


def records_array(result: BenchResult, method: str, group: str, metric: str) -> np.ndarray:
    """The per-image values of one metric for one method and one modality pair (records without
    that metric, e.g. merged from a run with fewer metrics, are left out)."""
    return np.array([r[metric] for r in result.records
                     if r["method"] == method and r["group"] == group and metric in r],
                    dtype=np.float64)
