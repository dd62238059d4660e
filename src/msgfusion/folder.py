"""Fusing a folder of pairs into a folder of images (``msgfusion fuse-dir``, :func:`fuse_folder`):
checks before anything is written, worker threads that read, fuse, colour and encode batches of
pairs, writer threads that commit each file atomically, and a resumable, keep-going run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msgfusion.data.datasets import PairFolder, name_list
from msgfusion.errors import DatasetError, MsgFusionError, OutputExistsError, OutputWriteError
from msgfusion.io.color import DEFAULT_COLOR_MODE, restore_color
from msgfusion.io.files import atomic_write
from msgfusion.io.images import check_writable, encode_image
from msgfusion.methods.registry import DEFAULT_METHOD, FusionMethod, fuse_pairs, get_method
from msgfusion.pair import FusionPair
from msgfusion.progress import progress_bar
from msgfusion.workers import in_workers

#: fuse_folder: images encoded and waiting for the disk at most (beyond, workers wait).
PENDING_WRITES = 32


@dataclass
class FolderResult:
    """What :func:`fuse_folder` did: outputs written, outputs that existed and were skipped,
    and the pairs that failed (name -> one-line reason)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def fuse_folder(
    pairs_dir: str | os.PathLike | PairFolder,
    out_dir: str | os.PathLike,
    method: str | FusionMethod = DEFAULT_METHOD,
    color: str = DEFAULT_COLOR_MODE,
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
    keep_going: bool = False,
    batch_size: int = 1,
    workers: int | None = None,
    on_failure: Callable[[str, str], object] | None = None,
    progress: bool = True,
) -> FolderResult:
    """Fuse every pair of a folder of pairs into ``out_dir``, under the pairs' file names.

    Before anything is written, every pair is checked from its headers (regular files, sound
    headers and PNG checksums, one size; :meth:`PairFolder.problems`) and every output path
    (no clobbering unless ``overwrite``; with ``skip_existing`` an existing output is kept and
    its pair skipped, which resumes an interrupted run). By default the first problem raises a
    :class:`~msgfusion.errors.MsgFusionError`; with ``keep_going`` a failing pair (unreadable,
    too small for the method, out of memory, unwritable output) is reported to
    ``on_failure(name, reason)`` and the others are fused.

    ``workers`` threads (default: one per usable CPU core) each read ``batch_size`` pairs, fuse
    them in one call of the method, restore colour and encode them, and two writer threads
    commit the files (:func:`~msgfusion.io.files.atomic_write`), so that reading, fusing and
    writing of different pairs overlap and every core fuses. PyTorch's own threads multiply
    with them: the CLI runs one per worker (``torch.set_num_threads(1)``, its ``--threads``
    default); from Python, set it too for a CPU network.
    """
    if overwrite and skip_existing:
        raise ValueError("overwrite and skip_existing exclude each other")
    if batch_size < 1 or (workers is not None and workers < 1):
        raise ValueError(f"batch_size and workers must be positive, got {batch_size} and "
                         f"{workers}")
    folder = (pairs_dir if isinstance(pairs_dir, PairFolder)
              else PairFolder(pairs_dir, check_sizes=False))
    method = get_method(method) if isinstance(method, str) else method
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputWriteError(f"{out_dir}: exists and is not a folder")
    result = FolderResult()

    def fail(index: int, reason: str | MsgFusionError) -> None:
        name = folder.files[index].stem
        result.failed[name] = str(reason)
        if on_failure is not None:
            on_failure(name, str(reason))

    problems = folder.problems()
    if problems and not keep_going:
        raise DatasetError(f"{len(problems)} of {len(folder)} pair(s) cannot be fused: "
                           f"{name_list(list(problems.values()), 3)}")
    for i, reason in problems.items():
        fail(i, reason)
    todo: list[tuple[int, Path]] = []
    existing = []
    for i, f in enumerate(folder.files):
        if i in problems:
            continue
        out = out_dir / f.name
        if out.exists() and skip_existing:
            result.skipped.append(out)
        elif out.exists() and not overwrite:
            existing.append(out)
            if keep_going:
                fail(i, OutputExistsError(f"{out}: already exists"))
        else:
            todo.append((i, check_writable(out, overwrite)))
    if existing and not keep_going:
        raise OutputExistsError(f"{out_dir}: {len(existing)} output(s) already exist: "
                                f"{name_list([p.name for p in existing], 3)}")

    def written_note(exc: MsgFusionError) -> MsgFusionError:
        if not result.written:
            return exc
        return type(exc)(f"{exc}; {len(result.written)} image(s) were written before it "
                         "(skip existing outputs to resume)")

    # Each encoded image is committed (written, fsync'ed, linked into place: atomic_write) by
    # threads of its own, so that a worker goes on with its next pair instead of waiting for
    # the disk (fsync took 0.25 ms per image here, far more on a spinning disk).
    writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="msgfusion-write")
    slots = threading.BoundedSemaphore(PENDING_WRITES)
    commits: list[tuple[Path, Future]] = []

    def commit(out: Path, data: bytes) -> Path:
        try:
            return atomic_write(out, lambda f: f.write(data), overwrite)
        finally:
            slots.release()

    Outcome = MsgFusionError | Future | None

    def job(chunk: list[tuple[int, Path]]) -> list[tuple[int, Path, Outcome]]:
        """Read, fuse, colour and encode one chunk of pairs (in a worker thread), each image
        then handed to the writer; each pair's outcome: the write's future, or the error
        (``keep_going``; else it is raised)."""
        outcomes: list[tuple[int, Path, Outcome]] = []
        batch = []
        for i, out in chunk:
            try:
                batch.append((i, out, folder[i]))
            except MsgFusionError as exc:
                if not keep_going:
                    raise
                outcomes.append((i, out, exc))
        failed: dict[int, MsgFusionError] = {}
        fused = _fuse_isolating(method, batch, keep_going, failed.__setitem__)
        outcomes += [(i, out, failed[i]) for i, out, _ in batch if i in failed]
        for i, out, pair, intensity in fused:
            try:
                data = encode_image(out, restore_color(intensity, pair.func, color),
                                    source=folder.files[i].mr_path)  # a DICOM output's patient
            except MsgFusionError as exc:
                if not keep_going:
                    raise
                outcomes.append((i, out, exc))
                continue
            slots.acquire()
            future = writer.submit(commit, out, data)
            commits.append((out, future))
            outcomes.append((i, out, future))
        return outcomes

    desc = f"{folder.modality}-MRI {method.name}"
    chunks = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    results = in_workers(job, chunks, workers)
    stop: MsgFusionError | None = None
    with progress_bar(total=len(todo), desc=desc, unit="pair", enabled=progress) as bar:
        try:
            for outcomes in results:
                for i, out, outcome in outcomes:
                    if isinstance(outcome, Future):
                        try:
                            outcome.result()
                            outcome = None
                        except MsgFusionError as exc:
                            if not keep_going:
                                raise
                            outcome = exc
                    if outcome is None:
                        result.written.append(out)
                    else:
                        fail(i, outcome)
                bar.update(len(outcomes))
        except MsgFusionError as exc:
            stop = exc
        finally:
            # every worker stopped first (none then waits for a write slot), then the writes
            # not started are dropped
            results.close()
            writer.shutdown(wait=True, cancel_futures=True)
    if stop is not None:  # the writes that completed count as written
        result.written = [out for out, future in commits if future.done()
                          and not future.cancelled() and future.exception() is None]
        raise written_note(stop) from None
    return result


def _fuse_isolating(method: FusionMethod, batch: list[tuple[int, Path, FusionPair]],
                    keep_going: bool, fail: Callable[[int, MsgFusionError], None],
                    ) -> list[tuple[int, Path, FusionPair, np.ndarray]]:
    """Fuse a batch; with ``keep_going``, a failing batch is retried pair by pair and each
    failing pair reported to ``fail``."""
    try:
        fused = fuse_pairs(method, [pair for _, _, pair in batch], batch_size=max(1, len(batch)))
        return [(i, out, pair, f) for (i, out, pair), f in zip(batch, fused)]
    except MsgFusionError:
        if not keep_going:
            raise
    done = []
    for i, out, pair in batch:
        try:
            (f,) = fuse_pairs(method, [pair])
            done.append((i, out, pair, f))
        except MsgFusionError as exc:
            fail(i, exc)
    return done
