"""What a Dask worker does with a batch of subjects: read, (register), fuse, write, score, record.

The runner sends each worker task a *batch* of :class:`SubjectJob` (several slice pairs, or one
volume pair), so that Dask's cost per task (milliseconds) is shared by the batch. The worker
reads every subject of the batch, fuses the slice pairs of one method and colour with one call of
:func:`msgfusion.fuse_many` (the network's batches), each volume with
:func:`msgfusion.fuse_volume`, writes the results, scores them and returns only the rows of the
results table: images never travel to the client. Every step goes through the public API that
the CLI uses: there is no second fusion path, and ``fuse_many`` gives the very pictures that
``fuse`` gives one by one.

A user error (a :class:`~msgfusion.errors.MsgFusionError`: unreadable file, size mismatch) marks
that subject failed with its one-line reason and the rest of the batch goes on (a registration
the failure detector doubts: status ``doubtful``, its QA figure and transform beside where the
output would be, no fused output); a
:class:`~msgfusion.errors.MsgFusionWarning` (input used, but not as given) goes to the subject's
``warnings``; any other exception propagates, so Dask retries the batch. The last step writes
the subject's record (fingerprint and result row) atomically: a subject is done exactly when its
record exists, and a batch run again (its worker died) skips the subjects already recorded.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

import msgfusion
from msgfusion import (
    FusedVolume,
    FusionPair,
    Volume,
    evaluate,
    fuse,
    fuse_many,
    fuse_volume,
    load_volume,
    make_pair,
    read_image,
    write_image,
    write_volume,
)
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
    method_fp: str = ""
    sidecar: bool = False  # a BIDS derivative: a JSON sidecar beside the output
    index: int = 0  # the row's position in the manifest (and the results table)

    @property
    def transform_path(self) -> Path:
        """Where the registration's transform goes: beside the output (ITK text format)."""
        return side_path(self.output, ".tfm")

    @property
    def qa_path(self) -> Path:
        """Where the registration's QA figure goes: beside the output."""
        return side_path(self.output, "_qa.png")


def side_path(output: Path, tail: str) -> Path:
    """``output`` with its image suffix (``.png``, ``.nii.gz``) replaced by ``tail``."""
    name = output.name
    for suffix in (".nii.gz", output.suffix):
        if suffix and name.endswith(suffix):
            return output.with_name(name[: -len(suffix)] + tail)
    return output.with_name(name + tail)


@dataclass
class SubjectState:
    """A subject in its batch: its inputs as read, the fused result, timings, a failure."""

    job: SubjectJob
    inputs: Any = None  # a FusionPair (raw images before registration), or (MR, func) Volumes
    fused: Any = None  # a colour picture, or a FusedVolume
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0  # the worker process's CPU time over the steps
    warnings: list[str] = field(default_factory=list)  # MsgFusionWarnings: input not as given
    registration: str = ""  # the registration's summary, when the subject was registered
    reason: str = ""
    status: str = "done"  # done | failed | doubtful (a registration to look at)


@contextmanager
def _timed(states: Sequence[SubjectState], name: str) -> Iterator[list[str]]:
    """Time a step of ``states`` (the time and CPU shared equally among them), collect the
    MsgFusionWarnings it issues, and turn a user error into the failure of all of them."""
    start, cpu = time.perf_counter(), time.process_time()
    caught_messages: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MsgFusionWarning)
            yield caught_messages
        caught_messages += [str(w.message) for w in caught
                            if issubclass(w.category, MsgFusionWarning)]
    except RegistrationDoubtful as exc:
        for state in states:
            state.status = "doubtful"
            state.reason = (f"{name}: doubtful: " + "; ".join(d.reason for d in exc.doubts)
                            + f" ({exc.note})")
    except MsgFusionError as exc:
        for state in states:
            state.reason, state.status = f"{name}: {exc}", "failed"
    share = 1 / max(len(states), 1)
    for state in states:
        state.timings[f"{name}_s"] = state.timings.get(f"{name}_s", 0.0) + \
            share * (time.perf_counter() - start)
        state.cpu_s += share * (time.process_time() - cpu)


def _step(states: Sequence[SubjectState], name: str,
          fn: Callable[[SubjectState], None]) -> None:
    """Run ``fn`` on every subject that has not failed, one at a time."""
    for state in states:
        if not state.reason:
            with _timed([state], name) as messages:
                fn(state)
            state.warnings += messages


class SliceKind:
    """2-D slices (PNG, JPEG, TIFF, BMP), the path of ``msgfusion fuse``: a
    :class:`FusionPair`, fused with its batch by :func:`msgfusion.fuse_many`, written as an
    image, scored."""

    suffix = ".png"

    @staticmethod
    def read(job: SubjectJob) -> FusionPair | tuple[np.ndarray, np.ndarray]:
        """The pair; with registration, the two images as read (they need not be of one size)."""
        s = job.subject
        if job.register:
            return read_image(s.mr), read_image(s.func)
        return make_pair(s.mr, s.func, modality=s.modality, name=s.id)

    @staticmethod
    def register(job: SubjectJob, images: tuple[np.ndarray, np.ndarray]) -> tuple[FusionPair, Any]:
        """The functional image registered onto the MR (2-D similarity) and resampled onto its
        grid, as ``msgfusion fuse --register`` does; the pair and the registration result."""
        from msgfusion.register import register_pair

        return register_pair(*images, modality=job.subject.modality, name=job.subject.id,
                             accept_doubtful=True)

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
                 ) -> tuple[tuple[Volume, Volume], Any]:
        """The functional volume registered onto the MR (rigid) and resampled onto its grid."""
        from msgfusion.register import register_volumes, resample

        mr, func = volumes
        result = register_volumes(mr, func, accept_doubtful=True)
        # outside the functional volume's field of view: no signal (its minimum)
        return (mr, resample(func, mr, result.transform, default=float(np.min(func.data)))), \
            result

    @staticmethod
    def fuse(job: SubjectJob, volumes: tuple[Volume, Volume]) -> FusedVolume:
        # one thread per task: the cluster runs batches side by side
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


def recorded_row(job: SubjectJob) -> dict[str, Any] | None:
    """The recorded row of a job whose output and matching record exist, else ``None``."""
    if not (job.output.is_file() and job.record.is_file()):
        return None
    try:
        record = json.loads(job.record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record["row"] if record.get("fingerprint") == job.fingerprint else None


def _read(state: SubjectState) -> None:
    state.inputs = KINDS[state.job.subject.kind].read(state.job)


def _register(state: SubjectState) -> None:
    """Register the functional input onto the MR; write the transform and the QA figure beside
    the output. A registration that fails (:class:`~msgfusion.errors.RegistrationError`) fails
    the subject; one that the failure detector doubts stops it (status ``doubtful``): the
    figure and the transform are there to look at, and the subject is not fused."""
    from msgfusion.register import qa_figure, write_transform

    job = state.job
    state.inputs, result = KINDS[job.subject.kind].register(job, state.inputs)
    state.registration = result.summary
    job.output.parent.mkdir(parents=True, exist_ok=True)
    write_transform(job.transform_path, result.transform, overwrite=True)
    qa_figure(result, job.qa_path, overwrite=True, title=job.subject.id)
    if result.doubts:
        raise RegistrationDoubtful(result.doubts, result,
                                   f"QA figure {job.qa_path}, transform {job.transform_path}")


def _fuse_slices(states: Sequence[SubjectState]) -> None:
    """Fuse the slice pairs of a batch, one :func:`msgfusion.fuse_many` call per method and
    colour; if the call fails on one pair (e.g. too small for the method), each pair of that
    group is fused alone so that only the culprit fails."""
    groups: dict[tuple[str, str], list[SubjectState]] = {}
    for state in states:
        if not state.reason:
            groups.setdefault((state.job.method, state.job.color), []).append(state)
    for (method, color), group in groups.items():
        with _timed(group, "fuse") as messages:
            pictures = fuse_many([s.inputs for s in group], method=method, color=color)
            for state, picture in zip(group, pictures):
                state.fused = picture
        if group[0].reason and len(group) > 1:  # find the culprit(s)
            for state in group:
                state.reason, state.status, state.timings["fuse_s"] = "", "done", 0.0
            _step(group, "fuse", _fuse_alone)
            continue
        for state in group:  # a warning naming a pair is that pair's; others are the batch's
            state.warnings += [m for m in messages if state.job.subject.id in m
                               or not any(s.job.subject.id in m for s in group)]


def _fuse_alone(state: SubjectState) -> None:
    state.fused = fuse(state.inputs, method=state.job.method, color=state.job.color)


def _fuse_volume(state: SubjectState) -> None:
    state.fused = VolumeKind.fuse(state.job, state.inputs)


def _write(state: SubjectState) -> None:
    """Write the fused result atomically (a temporary file renamed into place), and the BIDS
    sidecar of a derivative."""
    job = state.job
    job.output.parent.mkdir(parents=True, exist_ok=True)
    KINDS[job.subject.kind].write(job, state.fused)
    if job.sidecar:
        write_text(side_path(job.output, ".json"), json.dumps(sidecar(job, state), indent=2),
                   overwrite=True)


def sidecar(job: SubjectJob, state: SubjectState) -> dict[str, Any]:
    """The JSON sidecar of a fused BIDS derivative: how it was made."""
    return {
        "Description": f"{job.subject.modality}-MRI fusion by msgfusion (method {job.method}), "
                      "on the MR's grid",
        "InputFiles": [str(job.subject.mr), str(job.subject.func)],
        "FusionMethod": job.method,
        "MethodFingerprint": job.method_fp,
        "ColorMode": job.color,
        "Modality": job.subject.modality,
        "SkullStripped": False,
        "Registration": ({"Summary": state.registration,
                          "Transform": job.transform_path.name,
                          "QAFigure": job.qa_path.name} if job.register else "none"),
        "SoftwareVersion": msgfusion.__version__,
    }


def _score(state: SubjectState) -> None:
    if state.job.metrics:
        state.metrics = KINDS[state.job.subject.kind].score(state.job, state.inputs, state.fused)


def _row(state: SubjectState, worker: str) -> dict[str, Any]:
    """The subject's row of the results table; its record written when it is done."""
    job = state.job
    row: dict[str, Any] = {
        "id": job.subject.id, "status": state.status,
        "reason": state.reason, "warnings": "; ".join(state.warnings),
        "modality": job.subject.modality, "kind": job.subject.kind,
        "method": job.method, "color": job.color, "registration": state.registration,
        "output": str(job.output) if state.status == "done" else "",
        "worker": worker, "pid": os.getpid(),
        **state.timings, "total_s": sum(state.timings.values()), "cpu_s": state.cpu_s,
        **state.metrics,
    }
    if job.register:
        row["transform"] = str(job.transform_path) if job.transform_path.is_file() else ""
        row["qa_figure"] = str(job.qa_path) if job.qa_path.is_file() else ""
    if state.status == "done":
        write_text(job.record, json.dumps({"fingerprint": job.fingerprint, "row": row}, indent=1),
                   overwrite=True)
    return row


def run_batch(jobs: Sequence[SubjectJob]) -> list[dict[str, Any]]:
    """A worker task: process a batch of subjects, return their rows (input order).

    Subjects already recorded with their fingerprint (a batch run again after its first worker
    died) are not computed twice: their recorded rows are returned.
    """
    try:
        from distributed import get_worker

        worker = get_worker().address
    except ValueError:  # called outside a worker
        worker = ""
    rows: list[dict[str, Any] | None] = [recorded_row(job) for job in jobs]
    states = [SubjectState(job) for job, row in zip(jobs, rows) if row is None]
    _step(states, "read", _read)
    if any(s.job.register for s in states):
        _step([s for s in states if s.job.register], "register", _register)
    _fuse_slices([s for s in states if s.job.subject.kind == "slice"])
    _step([s for s in states if s.job.subject.kind == "volume"], "fuse", _fuse_volume)
    _step(states, "write", _write)
    _step(states, "score", _score)
    fresh = iter(states)
    return [row if row is not None else _row(next(fresh), worker) for row in rows]


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
