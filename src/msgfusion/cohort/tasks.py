"""The tasks of one subject, run on Dask workers: read -> (register) -> fuse -> write -> score.

Each step is a plain function of the previous step's :class:`SubjectState`, so the runner
submits them as a chain of Dask tasks (the scheduler keeps a chain on one worker, and recomputes
the lost links when a worker dies). Every step goes through the public Python API that the CLI
uses (:func:`msgfusion.make_pair`, :func:`msgfusion.fuse`, :func:`msgfusion.fuse_volume`,
:func:`msgfusion.write_image`, :func:`msgfusion.evaluate`): there is no second fusion path.

A user error (a :class:`~msgfusion.errors.MsgFusionError`: unreadable file, size mismatch)
marks the subject failed with its one-line reason and the later steps pass it through (a
registration the failure detector doubts: status ``doubtful``, its QA figure and transform
written beside the output, no fused output); a
:class:`~msgfusion.errors.MsgFusionWarning` (input used, but not as given) goes to the
subject's ``warnings``; any other exception propagates, so Dask retries the task. The last step
writes the subject's record (fingerprint and result row) atomically: a subject is done exactly
when its record exists.
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from msgfusion import (FusedVolume, FusionPair, Volume, evaluate, fuse, fuse_volume, load_volume,
                       make_pair, read_image, write_image, write_volume)
from msgfusion.cohort.manifest import Subject
from msgfusion.errors import MsgFusionError, MsgFusionWarning, RegistrationDoubtful
from msgfusion.io.files import write_text
from msgfusion.volume import Orientation, n_planes

STEPS = ("read", "register", "fuse", "write", "score")


@dataclass(frozen=True)
class SubjectJob:
    """Everything a worker needs to process one subject (small, sent with the task)."""

    subject: Subject
    method: str
    color: str
    metrics: tuple[str, ...]
    output: Path
    record: Path
    fingerprint: str
    register: bool = False


@dataclass
class SubjectState:
    """A subject between steps: its inputs as read, the fused result, timings, a failure."""

    job: SubjectJob
    inputs: Any = None  # what the kind's read gives: a FusionPair (raw images before registration), or (MR, functional) Volumes
    fused: Any = None  # what the kind's fuse gives: a colour picture, or a FusedVolume
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0  # the worker process's CPU time over the steps
    warnings: list[str] = field(default_factory=list)  # MsgFusionWarnings: input not used as given
    registration: str = ""  # the registration's summary, when the subject was registered
    reason: str = ""
    doubtful: bool = False  # the registration was doubted: its QA figure and transform written


def _step(name: str) -> Callable[[Callable[[SubjectState], None]], Callable[..., SubjectState]]:
    """Time a step; turn a user error into the subject's failure and keep its warnings for
    the results table; skip failed subjects. The step works on a copy of its input (Dask may
    keep the input for a retry), sharing the arrays."""
    def wrap(fn: Callable[[SubjectState], None]) -> Callable[..., SubjectState]:
        @functools.wraps(fn)
        def run(state: SubjectState) -> SubjectState:
            if state.reason:
                return state
            state = replace(state, timings=dict(state.timings), warnings=list(state.warnings))
            start, cpu = time.perf_counter(), time.process_time()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", MsgFusionWarning)
                    fn(state)
                state.warnings += [str(w.message) for w in caught
                                   if issubclass(w.category, MsgFusionWarning)]
            except RegistrationDoubtful as exc:
                state.reason = (f"{name}: doubtful: "
                                + "; ".join(d.reason for d in exc.doubts) + f" ({exc.note})")
                state.doubtful = True
            except MsgFusionError as exc:
                state.reason = f"{name}: {exc}"
            state.timings[f"{name}_s"] = time.perf_counter() - start
            state.cpu_s += time.process_time() - cpu
            return state
        return run
    return wrap


def doubt_files(job: SubjectJob) -> tuple[Path, Path]:
    """Where a doubted registration's QA figure and transform go: beside the output."""
    stem = job.output.name.split(".")[0]
    return job.output.with_name(f"{stem}_qa.png"), job.output.with_name(f"{stem}.tfm")


def stop_if_doubtful(job: SubjectJob, result: Any) -> None:
    """A doubted registration stops the subject (status ``doubtful``) after writing its QA
    figure and transform beside the output, for the user to look at."""
    from msgfusion.register import qa_figure, write_transform

    if not result.doubts:
        return
    qa, transform = doubt_files(job)
    qa_figure(result, qa, overwrite=True)
    write_transform(transform, result.transform, overwrite=True)
    raise RegistrationDoubtful(result.doubts, result, f"QA figure {qa}, transform {transform}")


class SliceKind:
    """2-D slices (PNG, JPEG, TIFF, BMP), the path of ``msgfusion fuse``: a
    :class:`FusionPair` fused by the method, colour restored, written as an image, scored."""

    suffix = ".png"

    @staticmethod
    def read(job: SubjectJob) -> FusionPair | tuple[np.ndarray, np.ndarray]:
        """The pair; with registration, the two images as read (they need not be of one size)."""
        s = job.subject
        if job.register:
            return read_image(s.mr), read_image(s.func)
        return make_pair(s.mr, s.func, modality=s.modality, name=s.id)

    @staticmethod
    def register(job: SubjectJob, images: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[FusionPair, str]:
        """The functional image registered onto the MR (2-D similarity) and resampled onto its
        grid, as ``msgfusion fuse --register`` does."""
        from msgfusion.register import register_pair

        pair, result = register_pair(*images, modality=job.subject.modality, name=job.subject.id,
                                     accept_doubtful=True)
        stop_if_doubtful(job, result)
        return pair, result.summary

    @staticmethod
    def fuse(job: SubjectJob, pair: FusionPair) -> np.ndarray:
        return fuse(pair, method=job.method, color=job.color)

    @staticmethod
    def write(job: SubjectJob, fused: np.ndarray) -> None:
        write_image(job.output, fused, overwrite=True)

    @staticmethod
    def score(job: SubjectJob, pair: FusionPair, fused: np.ndarray) -> dict[str, float]:
        return evaluate(pair.mr, pair.func, fused, job.metrics)


class VolumeKind:
    """Volumes (NIfTI, DICOM series, MetaImage, NRRD), the path of ``msgfusion fuse`` for
    volumes: :func:`~msgfusion.load_volume` for both, :func:`~msgfusion.fuse_volume`
    (the functional volume resampled onto the MR's grid, fused slice by slice), the picture
    written as NIfTI with the MR's geometry, and the metrics of the central axial slice."""

    suffix = ".nii.gz"

    @staticmethod
    def read(job: SubjectJob) -> tuple[Volume, Volume]:
        return load_volume(job.subject.mr), load_volume(job.subject.func)

    @staticmethod
    def register(job: SubjectJob, volumes: tuple[Volume, Volume]
                 ) -> tuple[tuple[Volume, Volume], str]:
        """The functional volume registered onto the MR (rigid) and resampled onto its grid."""
        from msgfusion.register import register_volumes, resample

        mr, func = volumes
        result = register_volumes(mr, func, accept_doubtful=True)
        stop_if_doubtful(job, result)
        # outside the functional volume's field of view: no signal (its minimum)
        return (mr, resample(func, mr, result.transform, default=float(np.min(func.data)))), \
            result.summary

    @staticmethod
    def fuse(job: SubjectJob, volumes: tuple[Volume, Volume]) -> FusedVolume:
        # one thread per task: the cluster runs subjects side by side
        return fuse_volume(*volumes, modality=job.subject.modality,
                           method=job.method, color=job.color, workers=1)

    @staticmethod
    def write(job: SubjectJob, fused: FusedVolume) -> None:
        label = f"{fused.modality}-MRI fused with {fused.method}"
        write_volume(job.output, fused.picture, overwrite=True, source=fused.mr,
                     description=f"{label} (msgfusion)",
                     derivation=f"{label}, colour {job.color}, from {job.subject.mr.name} and "
                                f"{job.subject.func.name} resampled onto the MR grid")

    @staticmethod
    def score(job: SubjectJob, volumes: tuple[Volume, Volume],
              fused: FusedVolume) -> dict[str, float]:
        """The metrics of the central axial slice: MR, functional as the method saw it, fused
        picture, as :meth:`~msgfusion.FusedVolume.planes` gives them."""
        axial = n_planes(Orientation.of(fused.mr).view(fused.mr.data), "axial")
        return evaluate(*fused.planes("axial", axial // 2), job.metrics)


#: How each kind of input (:attr:`Subject.kind`) is read, fused, written and scored.
KINDS: dict[str, type[SliceKind] | type[VolumeKind]] = {"slice": SliceKind, "volume": VolumeKind}


@_step("read")
def _read(state: SubjectState) -> None:
    state.inputs = KINDS[state.job.subject.kind].read(state.job)


def read_subject(job: SubjectJob) -> SubjectState:
    """The first task of a subject's chain: read its inputs (a pair of slices or volumes)."""
    return _read(SubjectState(job))


@_step("register")
def register_subject(state: SubjectState) -> None:
    """Register the functional input onto the MR (only in chains of registered subjects)."""
    state.inputs, state.registration = KINDS[state.job.subject.kind].register(state.job,
                                                                               state.inputs)


@_step("fuse")
def fuse_subject(state: SubjectState) -> None:
    """Fuse with the subject's method (one cached instance per worker process) and restore
    the colour."""
    state.fused = KINDS[state.job.subject.kind].fuse(state.job, state.inputs)


@_step("write")
def write_subject(state: SubjectState) -> None:
    """Write the fused result atomically (a temporary file renamed into place)."""
    KINDS[state.job.subject.kind].write(state.job, state.fused)


@_step("score")
def _score(state: SubjectState) -> None:
    if state.job.metrics:
        state.metrics = KINDS[state.job.subject.kind].score(state.job, state.inputs, state.fused)


def score_subject(state: SubjectState) -> dict[str, Any]:
    """Score the subject, record it when done, and return its row of the results table.

    Metric values travel in the row under their labels; a failed subject has ``status`` failed
    and the one-line ``reason``, and no record (a re-run tries it again).
    """
    from distributed import get_worker

    state = _score(state)
    job = state.job
    row: dict[str, Any] = {
        "id": job.subject.id,
        "status": "doubtful" if state.doubtful else "failed" if state.reason else "done",
        "reason": state.reason, "warnings": "; ".join(state.warnings),
        "modality": job.subject.modality, "kind": job.subject.kind,
        "method": job.method, "color": job.color, "registration": state.registration,
        "output": "" if state.reason else str(job.output),
        "worker": get_worker().address, "pid": os.getpid(),
        **state.timings, "total_s": sum(state.timings.values()), "cpu_s": state.cpu_s,
        **state.metrics,
    }
    if not state.reason:
        write_text(job.record, json.dumps({"fingerprint": job.fingerprint, "row": row}, indent=1),
                   overwrite=True)
    return row


class CohortWorkerSetup(WorkerPlugin):
    """Runs once in every worker process (also in workers that join or restart later): sets
    torch's thread count so that the workers of a machine share its cores instead of fighting
    over them, and loads the run's methods (weights included) by fusing a bundled sample pair,
    so that no subject pays for loading and each worker loads them once."""

    name = "msgfusion-cohort-setup"

    def __init__(self, torch_threads: int, methods: tuple[str, ...]) -> None:
        self.torch_threads = torch_threads
        self.methods = methods

    def setup(self, worker: Any) -> None:
        import torch

        from msgfusion.allocator import reuse_freed_memory
        from msgfusion.data.datasets import sample_folders

        reuse_freed_memory()
        torch.set_num_threads(self.torch_threads)
        sample = sample_folders()[1][0]
        for name in self.methods:
            fuse(sample, method=name)
