"""The FastAPI application: the fusion page, the rater pages and the admin page.

Routes (``create_app(data_dir)``):

- ``/``: the fusion page; ``POST /api/fuse`` fuses an uploaded pair with the chosen methods
  through the public API (:func:`msgfusion.fuse`) and returns the images' URLs and the paper's
  metrics; for two volumes it runs a volume job and answers with its NIfTI downloads.
- ``/volumes``: the volume page (NiiVue); ``/api/volume-jobs`` starts a job (202), reports its
  progress, cancels it and serves its files (:mod:`msgfusion.web.volumes`).
- ``/r/{token}``: a rater's study (introduction, ``/case/{n}``, ``/done``); images under
  ``/r/{token}/case/{n}/image/{mr|func|A|B...}``, so nothing in a URL names a method.
- ``/admin/{token}``: a study's results (tables, figure, CSV), more invitations, closing and
  reopening the study.

``create_app(..., study_only=True)`` (``msgfusion serve --study-only``) serves the rater and admin
pages only: no fusion page, no ``/api/fuse``, so a rater cannot fuse their case's sources with
each method beside the study. Anonymous fusion is bounded (:mod:`msgfusion.web.gate`): a pixel
limit from the image header, a fixed number of fusions at once with a bounded queue and a time
limit, and a byte bound on the results kept for viewing.

Errors reach the browser as one clear message (a page, or ``{"error": ...}`` from the API);
tracebacks stay in the server log.
"""

from __future__ import annotations

import io
import logging
import math
import os
import secrets
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from msgfusion import (
    DEFAULT_METHOD,
    evaluate,
    fuse,
    list_methods,
    make_pair,
)
from msgfusion.errors import (
    ImageReadError,
    ImageTooLargeError,
    MsgFusionError,
    MsgFusionWarning,
    StudyClosedError,
    StudyError,
)
from msgfusion.io.color import COLOR_MODES, DEFAULT_COLOR_MODE, to_uint8
from msgfusion.io.images import image_size
from msgfusion.metrics import METRICS, PAPER_METRICS
from msgfusion.web import WEB_MAX_PIXELS
from msgfusion.web.gate import FusionGate, ServerBusy
from msgfusion.web.report import (
    answers_csv,
    figure_png,
    study_results,
    tables,
    tables_csv,
)
from msgfusion.web.security import (
    BodyLimitMiddleware,
    RequestTooLarge,
    SameOriginMiddleware,
    check_form_token,
    form_token,
    redact,
    safe_filename,
    sniff_image,
)
from msgfusion.web.stats import StudyResults
from msgfusion.web.study import (
    LABELS,
    CaseView,
    Rater,
    Study,
    StudyStore,
    now,
)
from msgfusion.web.volumes import (
    VolumeJob,
    VolumeJobs,
    is_volume_upload,
    stage_uploads,
    validate,
)

log = logging.getLogger("msgfusion.web")
HERE = Path(__file__).resolve().parent
MB = 2**20
#: ``warnings.catch_warnings`` changes process-wide state: one request at a time records them.
_WARNINGS_LOCK = threading.Lock()


@dataclass
class FusionJob:
    """One fusion request's images (PNG bytes), kept in memory for a while to be shown."""

    names: dict[str, str]  # image key -> download file name
    images: dict[str, bytes]


class JobCache:
    """The most recent fusion results, bounded in number and in bytes (oldest dropped first;
    the newest job is always kept)."""

    def __init__(self, size: int, max_bytes: int = 256 * MB) -> None:
        self.size, self.max_bytes = size, max_bytes
        self._jobs: OrderedDict[str, FusionJob] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _bytes(job: FusionJob) -> int:
        return sum(len(b) for b in job.images.values())

    def add(self, job: FusionJob) -> str:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._jobs[key] = job
            while len(self._jobs) > 1 and (len(self._jobs) > self.size or sum(
                    map(self._bytes, self._jobs.values())) > self.max_bytes):
                self._jobs.popitem(last=False)
        return key

    def get(self, key: str) -> FusionJob | None:
        with self._lock:
            return self._jobs.get(key)


def niivue_bundle() -> Path | None:
    """NiiVue's browser bundle (``niivue.umd.js``), installed from the npm registry by ``npm ci``
    beside the package (the repository's ``node_modules``) or named by ``MSGFUSION_NIIVUE``."""
    named = os.environ.get("MSGFUSION_NIIVUE")
    if named:
        return Path(named) if Path(named).is_file() else None
    for folder in (*HERE.parents, Path.cwd()):
        bundle = folder / "node_modules" / "@niivue" / "niivue" / "dist" / "niivue.umd.js"
        if bundle.is_file():
            return bundle
    return None


class _StudyStatic(StaticFiles):
    """The static files of the study pages only (the stylesheet; not the fusion page's script)."""

    async def get_response(self, path: str, scope) -> Response:  # noqa: ANN001 - Starlette's
        if path != "style.css":
            raise HTTPException(404)
        return await super().get_response(path, scope)


@dataclass
class _Computed:
    """A study's results for one :meth:`StudyStore.version` and when they were computed."""

    version: tuple
    results: StudyResults
    at: str


def create_app(data_dir: str | os.PathLike, *, max_upload_mb: float = 20.0,
               max_pixels: int = WEB_MAX_PIXELS, jobs_kept: int = 64, jobs_mb: float = 256.0,
               study_only: bool = False, fusion_workers: int = 1, fusion_queue: int = 4,
               fusion_timeout: float = 60.0, max_volume_mb: float = 200.0,
               max_voxels: int = 32 * 2**20, volume_jobs_running: int = 1,
               volume_jobs_waiting: int = 2, volume_keep_s: float = 3600.0) -> FastAPI:
    """The web app serving the studies of ``data_dir`` and (unless ``study_only``) the fusion
    page and the volume page.

    ``max_upload_mb`` bounds each uploaded image; ``max_pixels`` an uploaded image's size (from
    its header, before decoding); ``jobs_kept`` and ``jobs_mb`` how many fusion results, and how
    many MB of them, stay available for viewing and download; ``fusion_workers`` image fusions
    run at once, at most ``fusion_queue`` more wait, and an image fusion request has
    ``fusion_timeout`` seconds in all (:class:`~msgfusion.web.gate.FusionGate`).
    ``max_volume_mb`` bounds each uploaded volume (a file, a zip or the files of a DICOM series;
    the whole request to twice that plus a margin), ``max_voxels`` its voxels; volume jobs run
    ``volume_jobs_running`` at once with ``volume_jobs_waiting`` more queued (beyond: 503 busy),
    and their files are deleted ``volume_keep_s`` seconds after they end.
    """
    store = StudyStore(data_dir)
    secret = store.secret()
    jobs = JobCache(jobs_kept, int(jobs_mb * MB))
    gate = FusionGate(fusion_workers, fusion_queue, fusion_timeout)
    file_limit = int(max_upload_mb * MB)
    volume_limit = int(max_volume_mb * MB)
    volume_jobs = VolumeJobs(Path(data_dir) / "volume-jobs", volume_jobs_running,
                             volume_jobs_waiting, volume_keep_s)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    computed: dict[int, _Computed] = {}  # study id -> its latest results
    computed_lock = threading.Lock()

    app = FastAPI(title="msgfusion", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.add_event_handler("shutdown", volume_jobs.close)  # running jobs cancelled
    # a study-only server takes forms only (an answer, a comment of at most 2000 characters)
    app.add_middleware(BodyLimitMiddleware, limit=64 * 1024 if study_only
                       else 2 * max(file_limit, volume_limit) + 64 * 1024)
    app.add_middleware(SameOriginMiddleware)
    static = _StudyStatic if study_only else StaticFiles
    app.mount("/static", static(directory=str(HERE / "static")), name="static")

    # -- errors: one clear message, never a traceback ---------------------------------------

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error(request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"message": message},
                                          status_code=status)

    @app.exception_handler(MsgFusionError)
    async def _user_error(request: Request, exc: MsgFusionError) -> Response:
        return error(request, 400, str(exc))

    @app.exception_handler(RequestTooLarge)
    async def _too_large(request: Request, exc: RequestTooLarge) -> Response:
        return error(request, 413, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        messages = {404: "Not found. If you followed a link you were given, check that it was "
                         "copied completely.", 405: "This page does not accept that request."}
        return error(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({str(e["loc"][-1]) for e in exc.errors()})
        return error(request, 400, f"incomplete or malformed request (check: {', '.join(fields)})")

    @app.exception_handler(ServerBusy)
    async def _busy(request: Request, exc: ServerBusy) -> Response:
        response = error(request, 503, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, redact(request.url.path))
        return error(request, 500, "Internal error: the server could not finish this request. "
                                   "It has been logged; please try again.")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    # -- the fusion page and the volume page (left out with study_only) --------------------------

    fusion = APIRouter()

    @fusion.get("/", response_class=HTMLResponse)
    def fusion_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "fuse.html", {
            "methods": list_methods(), "default_method": DEFAULT_METHOD, "colors": COLOR_MODES,
            "default_color": DEFAULT_COLOR_MODE, "max_mb": max_upload_mb, "metrics": PAPER_METRICS,
            "max_pixels": max_pixels})

    def read_upload(upload: UploadFile, label: str, folder: Path) -> Path:
        data = upload.file.read(file_limit + 1)
        if len(data) > file_limit:
            raise ImageReadError(f"{label}: larger than {max_upload_mb:g} MB")
        suffix = sniff_image(data, label)
        stem = Path(safe_filename(upload.filename)).stem or "upload"
        path = folder / f"{stem}{suffix}"
        path.write_bytes(data)
        return path

    def is_volume(uploads: list[UploadFile]) -> bool:
        head = uploads[0].file.read(352)
        uploads[0].file.seek(0)
        return is_volume_upload([u.filename for u in uploads], head)

    def start_volume_job(mr: list[UploadFile], func: list[UploadFile], methods: list[str],
                         color: str | None, modality: str, register: bool,
                         accept_doubtful: bool) -> VolumeJob:
        chosen, color = validate(methods, color or DEFAULT_COLOR_MODE)
        job_id, folder = volume_jobs.new_folder()
        try:
            labels = (f"MR {safe_filename(mr[0].filename)}",
                      f"functional {safe_filename(func[0].filename)}")
            paths = [stage_uploads(uploads, folder / key, volume_limit, label)
                     for uploads, key, label in ((mr, "mr", labels[0]), (func, "func", labels[1]))]
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = VolumeJob(job_id, folder, paths[0], paths[1], labels, chosen, color,
                        None if modality == "auto" else modality, register, accept_doubtful,
                        max_voxels=max_voxels)
        return volume_jobs.submit(job)

    def volume_job_json(job: VolumeJob) -> dict:
        base = f"/api/volume-jobs/{job.id}"
        answer = {"job": job.id, "url": base, "status": job.status,
                  "progress": round(job.progress, 4), "message": job.message,
                  "registration": job.registration, "methods": job.methods, "color": job.color,
                  "qa": f"{base}/files/qa.png" if job.qa else None, **job.info}
        if job.status == "done":
            answer["sources"] = {"mr": f"{base}/files/mr.nii.gz",
                                 "func": f"{base}/files/func.nii.gz"}
            answer["results"] = [
                {"method": r.method, "url": f"{base}/files/{r.nifti.name}",
                 "download": f"{base}/files/{r.nifti.name}?download=1",
                 "dicom": f"{base}/files/{r.dicom_zip.name}?download=1",
                 "metrics": {k: round(v, 4) if math.isfinite(v) else None
                             for k, v in r.metrics.items()}}
                for r in job.results]
            answer["metric_labels"] = [{"label": k, "better": METRICS[k].direction,
                                        "description": METRICS[k].description}
                                       for k in PAPER_METRICS]
        return answer

    @fusion.post("/api/volume-jobs", status_code=202)
    def api_volume_job(mr: list[UploadFile] = File(...), func: list[UploadFile] = File(...),
                       methods: list[str] = Form(...), color: str | None = Form(None),
                       modality: str = Form("auto"), register_: bool = Form(False, alias="register"),
                       accept_doubtful: bool = Form(False)) -> JSONResponse:
        job = start_volume_job(mr, func, methods, color, modality, register_, accept_doubtful)
        return JSONResponse(volume_job_json(job), status_code=202)

    @fusion.get("/api/volume-jobs/{job_id}")
    def api_volume_job_status(job_id: str) -> JSONResponse:
        job = volume_jobs.get(job_id)
        if job is None:
            raise HTTPException(404)
        return JSONResponse(volume_job_json(job))

    @fusion.post("/api/volume-jobs/{job_id}/cancel")
    def api_volume_job_cancel(job_id: str) -> JSONResponse:
        job = volume_jobs.get(job_id)
        if job is None:
            raise HTTPException(404)
        job.cancel.set()
        return JSONResponse(volume_job_json(job))

    @fusion.get("/api/volume-jobs/{job_id}/files/{name}")
    def api_volume_job_file(job_id: str, name: str, download: int = 0) -> Response:
        job = volume_jobs.get(job_id)
        served = {"mr.nii.gz", "func.nii.gz", *(["qa.png"] if job and job.qa else []),
                  *(p.name for r in (job.results if job else []) for p in (r.nifti, r.dicom_zip))}
        if job is None or name not in served or not (job.folder / name).is_file():
            raise HTTPException(404)
        media = {"png": "image/png", "zip": "application/zip"}.get(name.rsplit(".", 1)[-1],
                                                                  "application/gzip")
        headers = {"Cache-Control": "private, max-age=600"}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return FileResponse(job.folder / name, media_type=media, headers=headers)

    @fusion.get("/volumes", response_class=HTMLResponse)
    def volume_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "volumes.html", {
            "methods": list_methods(), "default_method": DEFAULT_METHOD, "colors": COLOR_MODES,
            "default_color": DEFAULT_COLOR_MODE, "max_mb": max_volume_mb,
            "viewer": niivue_bundle() is not None})

    @fusion.get("/vendor/niivue.js")
    def niivue_js() -> Response:
        bundle = niivue_bundle()
        if bundle is None:
            raise HTTPException(404, "NiiVue is not installed: run `npm ci` in the repository")
        return FileResponse(bundle, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @fusion.post("/api/fuse")
    def api_fuse(mr: list[UploadFile] = File(...), func: list[UploadFile] = File(...),
                 methods: list[str] = Form(...), color: str | None = Form(None),
                 modality: str = Form("auto"), register_: bool = Form(False, alias="register"),
                 accept_doubtful: bool = Form(False)) -> JSONResponse:
        if is_volume(mr) or is_volume(func):
            job = start_volume_job(mr, func, methods, color, modality, register_,
                                   accept_doubtful)
            job.finished.wait()
            answer = volume_job_json(job)
            if job.status == "done":
                return JSONResponse(answer)
            answer["error"] = (f"doubtful registration, nothing fused: {job.message} (look at the "
                               "QA figure; send accept_doubtful=1 to fuse anyway)"
                               if job.status == "doubtful" else job.message)
            return JSONResponse(answer, status_code=409 if job.status == "doubtful" else 400)
        if len(mr) != 1 or len(func) != 1:
            raise MsgFusionError("send one MR image and one functional image (several files "
                                 "are taken only as the slices of a DICOM series)")
        (mr,), (func,) = mr, func
        methods, color = validate(methods, color or DEFAULT_COLOR_MODE)
        with gate.slot() as deadline:
            return fuse_uploads(mr, func, methods, color, modality, deadline.check)

    def fuse_uploads(mr: UploadFile, func: UploadFile, methods: list[str], color: str,
                     modality: str, check_time: Callable[[], None]) -> JSONResponse:
        with tempfile.TemporaryDirectory(prefix="msgfusion-upload-") as tmp:
            paths = {}
            for key, upload, label in (("mr", mr, "MR image"), ("func", func, "functional image")):
                folder = Path(tmp) / key
                folder.mkdir()
                name = safe_filename(upload.filename)
                path = read_upload(upload, f"{label} {name}", folder)
                try:  # the header (PNG, JPEG, TIFF or DICOM), nothing decoded yet
                    h, w = image_size(path)
                except MsgFusionError:
                    raise ImageReadError(f"{label} {name}: not a readable image "
                                         "(corrupt or truncated)") from None
                if w * h > max_pixels:
                    raise ImageTooLargeError(f"{label} {name}: {w} x {h} = {w * h:,} pixels, "
                                             f"above this server's limit of {max_pixels:,} "
                                             "(--max-pixels)")
                paths[key] = path

            def named(text: str) -> str:  # name the uploads, not the temporary folder
                return (text.replace(f"{tmp}{os.sep}mr{os.sep}", "MR image ")
                        .replace(f"{tmp}{os.sep}func{os.sep}", "functional image "))

            try:
                with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", MsgFusionWarning)
                    pair = make_pair(paths["mr"], paths["func"],
                                     None if modality == "auto" else modality)
            except MsgFusionError as exc:
                raise type(exc)(named(str(exc))) from None
            notes = [named(str(w.message)) for w in caught
                     if issubclass(w.category, MsgFusionWarning)]
        job = FusionJob(names={}, images={"mr": encode_png(pair.mr),
                                          "func": encode_png(pair.func)})
        results = []
        for i, m in enumerate(methods):
            check_time()
            fused = fuse(pair, method=m, color=color)
            key = f"result-{i}"
            job.images[key] = encode_png(fused)
            job.names[key] = f"fused-{pair.modality}-{m}-{color}.png"
            scores = evaluate(pair.mr, pair.func, fused, "paper")
            results.append({"method": m, "key": key,
                            "metrics": {k: round(v, 4) if math.isfinite(v) else None
                                        for k, v in scores.items()}})
        job_id = jobs.add(job)
        base = f"/api/jobs/{job_id}"
        for r in results:
            r["url"] = f"{base}/{r['key']}.png"
            r["download"] = f"{base}/{r['key']}.png?download=1"
        return JSONResponse({
            "modality": pair.modality, "color": color, "size": list(pair.shape),
            "warnings": notes,
            "sources": [{"label": "MR", "url": f"{base}/mr.png"},
                        {"label": pair.modality, "url": f"{base}/func.png"}],
            "results": results,
            "metrics": [{"label": k, "better": METRICS[k].direction,
                         "description": METRICS[k].description} for k in PAPER_METRICS]})

    @fusion.get("/api/jobs/{job_id}/{key}.png")
    def job_image(job_id: str, key: str, download: int = 0) -> Response:
        job = jobs.get(job_id)
        if job is None or key not in job.images:
            raise HTTPException(404)
        headers = {"Cache-Control": "private, max-age=3600"}
        if download and key in job.names:
            headers["Content-Disposition"] = f'attachment; filename="{job.names[key]}"'
        return Response(job.images[key], media_type="image/png", headers=headers)

    if not study_only:
        app.include_router(fusion)

    # -- the rater's pages -----------------------------------------------------------------------

    def rater_or_404(token: str) -> Rater:
        rater = store.rater(token)
        if rater is None:
            raise HTTPException(404)
        return rater

    def next_position(seq: list[CaseView], after: int = 0) -> int | None:
        """The first unanswered position after ``after`` (wrapping round), or None."""
        order = [v for v in seq if v.position > after] + [v for v in seq if v.position <= after]
        return next((v.position for v in order if v.choice_label is None), None)

    def rater_context(rater: Rater, seq: list[CaseView]) -> dict:
        return {"token": rater.token, "total": len(seq),
                "answered": sum(v.choice_label is not None for v in seq),
                "seq": seq, "modality": rater.study.modality, "closed": rater.study.closed_at}

    @app.get("/r/{token}", response_class=HTMLResponse)
    def rater_intro(request: Request, token: str) -> Response:
        rater = rater_or_404(token)
        seq = store.sequence(rater)
        ctx = rater_context(rater, seq)
        ctx.update(n_options=len(rater.study.methods),
                   labels=LABELS[:len(rater.study.methods)], resume=next_position(seq))
        return templates.TemplateResponse(request, "intro.html", ctx,
                                          headers={"Cache-Control": "no-store"})

    def render_case(request: Request, rater: Rater, position: int, message: str = "",
                    status: int = 200) -> Response:
        seq = store.sequence(rater)
        if not 1 <= position <= len(seq):
            raise HTTPException(404)
        view = seq[position - 1]
        ranks = {lab: i + 1 for i, lab in enumerate(view.ranking_labels)}
        ctx = rater_context(rater, seq)
        ctx.update(view=view, ranks=ranks, message=message,
                   csrf=form_token(secret, "rater:" + rater.token))
        return templates.TemplateResponse(request, "case.html", ctx, status_code=status,
                                          headers={"Cache-Control": "no-store"})

    @app.get("/r/{token}/case/{position}", response_class=HTMLResponse)
    def rater_case(request: Request, token: str, position: int) -> Response:
        return render_case(request, rater_or_404(token), position)

    def answer(request: Request, token: str, position: int, fields: dict[str, str],
               ranks_given: dict[str, str]) -> Response:
        rater = rater_or_404(token)
        if not check_form_token(secret, "rater:" + token, fields.get("csrf")):
            raise HTTPException(403, "This form has expired; reload the page and answer again.")
        if rater.study.closed_at:
            return render_case(request, rater, position, status=409)
        choice = fields.get("choice", "")
        if not choice:
            return render_case(request, rater, position,
                               "Please choose the image most useful for diagnosis.", 400)
        n = len(rater.study.methods)
        try:
            ranks = {label: int(value) for label, value in ranks_given.items()}
        except ValueError:
            ranks = None
        if ranks is None or any(not 1 <= r <= n for r in ranks.values()):
            return render_case(request, rater, position,
                               f"Ranks are whole numbers from 1 to {n}.", 400)
        ranks.pop(choice, None)  # the choice always ranks first; the ranks order the rest
        if len(set(ranks.values())) != len(ranks):
            return render_case(request, rater, position, "Give each rank at most once.", 400)
        ranking = [choice, *sorted(ranks, key=ranks.__getitem__)] if ranks else []
        try:
            view = store.save_answer(rater, position, choice, ranking, fields.get("comment", ""))
        except StudyClosedError:  # closed while the page was open
            return render_case(request, rater_or_404(token), position, status=409)
        except StudyError as exc:
            return render_case(request, rater, position, str(exc), 400)
        if fields.get("go") == "back" and position > 1:
            target = f"/r/{token}/case/{position - 1}"
        elif position < view.total:
            target = f"/r/{token}/case/{position + 1}"
        else:
            target = f"/r/{token}/done"
        return RedirectResponse(target, status_code=303)

    @app.post("/r/{token}/case/{position}")
    async def rater_answer(request: Request, token: str, position: int) -> Response:
        form = await request.form()
        fields = {k: str(form.get(k) or "").strip() for k in ("csrf", "choice", "comment", "go")}
        ranks = {k[5:]: str(v).strip() for k, v in form.multi_items()
                 if k.startswith("rank_") and str(v).strip()}
        return await run_in_threadpool(answer, request, token, position, fields, ranks)

    @app.get("/r/{token}/done", response_class=HTMLResponse)
    def rater_done(request: Request, token: str) -> Response:
        rater = rater_or_404(token)
        seq = store.sequence(rater)
        ctx = rater_context(rater, seq)
        ctx.update(missing=[v.position for v in seq if v.choice_label is None])
        return templates.TemplateResponse(request, "done.html", ctx,
                                          headers={"Cache-Control": "no-store"})

    @app.get("/r/{token}/case/{position}/image/{which}")
    def rater_image(token: str, position: int, which: str) -> Response:
        rater = rater_or_404(token)
        seq = store.sequence(rater)
        if not 1 <= position <= len(seq):
            raise HTTPException(404)
        view = seq[position - 1]
        if which in ("mr", "func"):
            path = rater.study.source_path(view.case_idx, which)
        elif which in {o.label for o in view.options}:
            path = view.option(which).path
        else:
            raise HTTPException(404)
        # bytes, not a file response: no ETag or Last-Modified that could tell files apart
        return Response(path.read_bytes(), media_type="image/png",
                        headers={"Cache-Control": "private, no-cache"})

    # -- the admin page --------------------------------------------------------------------------

    def study_or_404(token: str) -> Study:
        study = store.study_for_admin(token)
        if study is None:
            raise HTTPException(404)
        return study

    def results_of(study: Study) -> _Computed:
        """The study's results, computed again only when an answer, the raters or the close
        time changed (the bootstrap takes seconds on a few hundred answers)."""
        with computed_lock:  # one computation at a time; a second request waits and reuses it
            version = store.version(study)
            cached = computed.get(study.id)
            if cached is None or cached.version != version:
                cached = _Computed(version, study_results(store, study), now())
                computed[study.id] = cached
            return cached

    @app.get("/admin/{token}", response_class=HTMLResponse)
    def admin_page(request: Request, token: str) -> Response:
        study = study_or_404(token)
        done = results_of(study)
        res = done.results
        base = str(request.base_url).rstrip("/")
        return templates.TemplateResponse(request, "admin.html", {
            "study": study, "tables": tables(res), "token": token, "n_answers": res.n_answers,
            "computed_at": done.at,
            "links": [(r.number, f"{base}/r/{r.token}") for r in store.raters(study)],
            "csrf": form_token(secret, "admin:" + token)},
            headers={"Cache-Control": "no-store"})

    def admin_form(token: str, csrf: str) -> Study:
        study = study_or_404(token)
        if not check_form_token(secret, "admin:" + token, csrf):
            raise HTTPException(403, "This form has expired; reload the page.")
        return study

    @app.post("/admin/{token}/invite")
    def admin_invite(token: str, raters: int = Form(...), csrf: str = Form("")) -> Response:
        study = admin_form(token, csrf)
        if not 1 <= raters <= 500:
            raise StudyError("invite between 1 and 500 raters at a time")
        store.add_raters(study, raters)
        return RedirectResponse(f"/admin/{token}#raters", status_code=303)

    @app.post("/admin/{token}/{action}")
    def admin_set_closed(token: str, action: str, csrf: str = Form("")) -> Response:
        if action not in ("close", "reopen"):
            raise HTTPException(404)
        store.set_closed(admin_form(token, csrf), action == "close")
        return RedirectResponse(f"/admin/{token}", status_code=303)

    @app.get("/admin/{token}/{name}")
    def admin_file(token: str, name: str) -> Response:
        study = study_or_404(token)
        if name == "answers.csv":
            body, media = answers_csv(store, study).encode(), "text/csv"
        elif name == "results.csv":
            body, media = tables_csv(results_of(study).results).encode(), "text/csv"
        elif name == "results.png":
            body, media = figure_png(results_of(study).results), "image/png"
        else:
            raise HTTPException(404)
        headers = {"Cache-Control": "no-store"}
        if media == "text/csv":
            headers["Content-Disposition"] = f'attachment; filename="{study.name}-{name}"'
        return Response(body, media_type=media, headers=headers)

    return app


def encode_png(image: np.ndarray) -> bytes:
    """A fused image for viewing and download: 8-bit PNG (grey or RGB), default compression."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()
