"""The FastAPI application: the fusion page, the rater pages and the admin page.

Routes (``create_app(data_dir)``):

- ``/``: the fusion page; ``POST /api/fuse`` fuses an uploaded pair with the chosen methods
  through the public API (:func:`msgfusion.fuse`) and returns the images' URLs and the paper's
  metrics; for two volumes it runs a volume job and answers with its NIfTI downloads.
- ``/volumes``: the volume page (NiiVue); ``/api/volume-jobs`` starts a job (202), reports its
  progress, cancels it and serves its files (:mod:`msgfusion.web.volumes`).
- ``/r/{token}``: a rater's study (introduction, ``/case/{n}``, ``/done``); images under
  ``/r/{token}/case/{n}/image/{mr|func|A|B...}``, so nothing in a URL names a method.
- ``/admin/{token}``: a study's results (tables, figure, CSV) and more invitations.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
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
    check_color,
    check_method,
    evaluate,
    fuse,
    list_methods,
    make_pair,
)
from msgfusion.errors import (
    ImageReadError,
    MsgFusionError,
    MsgFusionWarning,
    StudyError,
)
from msgfusion.io.color import COLOR_MODES, DEFAULT_COLOR_MODE, to_uint8
from msgfusion.metrics import METRICS, PAPER_METRICS
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
    safe_filename,
    sniff_image,
)
from msgfusion.web.study import (
    LABELS,
    CaseView,
    Rater,
    Study,
    StudyStore,
)
from msgfusion.web.volumes import (
    ServerBusy,
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
    """The most recent fusion results, bounded in number (oldest dropped first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: OrderedDict[str, FusionJob] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, job: FusionJob) -> str:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._jobs[key] = job
            while len(self._jobs) > self.size:
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


def create_app(data_dir: str | os.PathLike, *, max_upload_mb: float = 20.0,
               max_pixels: int = 4096 * 4096, jobs_kept: int = 64,
               max_volume_mb: float = 200.0, max_voxels: int = 32 * 2**20,
               volume_jobs_running: int = 1, volume_jobs_waiting: int = 2,
               volume_keep_s: float = 3600.0) -> FastAPI:
    """The web app serving the studies of ``data_dir``, the fusion page and the volume page.

    ``max_upload_mb`` bounds each uploaded image; ``max_pixels`` an uploaded image's size;
    ``jobs_kept`` how many fusion results stay available for viewing and download.
    ``max_volume_mb`` bounds each uploaded volume (a file, a zip or the files of a DICOM series;
    the whole request to twice that plus a margin), ``max_voxels`` its voxels; volume jobs run
    ``volume_jobs_running`` at once with ``volume_jobs_waiting`` more queued (beyond: 503 busy),
    and their files are deleted ``volume_keep_s`` seconds after they end.
    """
    store = StudyStore(data_dir)
    secret = store.secret()
    jobs = JobCache(jobs_kept)
    file_limit = int(max_upload_mb * MB)
    volume_limit = int(max_volume_mb * MB)
    volume_jobs = VolumeJobs(Path(data_dir) / "volume-jobs", volume_jobs_running,
                             volume_jobs_waiting, volume_keep_s)
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    app = FastAPI(title="msgfusion", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.add_event_handler("shutdown", volume_jobs.close)  # running jobs cancelled
    app.add_middleware(BodyLimitMiddleware, limit=2 * max(file_limit, volume_limit) + 64 * 1024)
    app.add_middleware(SameOriginMiddleware)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

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

    @app.exception_handler(ServerBusy)
    async def _busy(request: Request, exc: ServerBusy) -> Response:
        return error(request, 503, str(exc))

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

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error(request, 500, "Internal error: the server could not finish this request. "
                                   "It has been logged; please try again.")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    # -- the fusion page -------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def fusion_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "fuse.html", {
            "methods": list_methods(), "default_method": DEFAULT_METHOD, "colors": COLOR_MODES,
            "default_color": DEFAULT_COLOR_MODE, "max_mb": max_upload_mb, "metrics": PAPER_METRICS})

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

    @app.post("/api/volume-jobs", status_code=202)
    def api_volume_job(mr: list[UploadFile] = File(...), func: list[UploadFile] = File(...),
                       methods: list[str] = Form(...), color: str | None = Form(None),
                       modality: str = Form("auto"), register_: bool = Form(False, alias="register"),
                       accept_doubtful: bool = Form(False)) -> JSONResponse:
        job = start_volume_job(mr, func, methods, color, modality, register_, accept_doubtful)
        return JSONResponse(volume_job_json(job), status_code=202)

    @app.get("/api/volume-jobs/{job_id}")
    def api_volume_job_status(job_id: str) -> JSONResponse:
        job = volume_jobs.get(job_id)
        if job is None:
            raise HTTPException(404)
        return JSONResponse(volume_job_json(job))

    @app.post("/api/volume-jobs/{job_id}/cancel")
    def api_volume_job_cancel(job_id: str) -> JSONResponse:
        job = volume_jobs.get(job_id)
        if job is None:
            raise HTTPException(404)
        job.cancel.set()
        return JSONResponse(volume_job_json(job))

    @app.get("/api/volume-jobs/{job_id}/files/{name}")
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

    @app.get("/volumes", response_class=HTMLResponse)
    def volume_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "volumes.html", {
            "methods": list_methods(), "default_method": DEFAULT_METHOD, "colors": COLOR_MODES,
            "default_color": DEFAULT_COLOR_MODE, "max_mb": max_volume_mb,
            "viewer": niivue_bundle() is not None})

    @app.get("/vendor/niivue.js")
    def niivue_js() -> Response:
        bundle = niivue_bundle()
        if bundle is None:
            raise HTTPException(404, "NiiVue is not installed: run `npm ci` in the repository")
        return FileResponse(bundle, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.post("/api/fuse")
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
        color = check_color(color or DEFAULT_COLOR_MODE)
        methods = [check_method(m) for m in dict.fromkeys(m for m in methods if m)]
        if not methods:
            raise MsgFusionError("choose at least one method")
        with tempfile.TemporaryDirectory(prefix="msgfusion-upload-") as tmp:
            paths = {}
            for key, upload, label in (("mr", mr, "MR image"), ("func", func, "functional image")):
                folder = Path(tmp) / key
                folder.mkdir()
                name = safe_filename(upload.filename)
                path = read_upload(upload, f"{label} {name}", folder)
                try:
                    with Image.open(path) as img:
                        w, h = img.size
                except Exception:  # noqa: BLE001 - Pillow raises many types for bad files
                    raise ImageReadError(f"{label} {name}: not a readable image "
                                         "(corrupt or truncated)") from None
                if w * h > max_pixels:
                    raise ImageReadError(f"{label} {name}: {w}x{h} pixels is more than the "
                                         f"{max_pixels} allowed")
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

    @app.get("/api/jobs/{job_id}/{key}.png")
    def job_image(job_id: str, key: str, download: int = 0) -> Response:
        job = jobs.get(job_id)
        if job is None or key not in job.images:
            raise HTTPException(404)
        headers = {"Cache-Control": "private, max-age=3600"}
        if download and key in job.names:
            headers["Content-Disposition"] = f'attachment; filename="{job.names[key]}"'
        return Response(job.images[key], media_type="image/png", headers=headers)

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
                "seq": seq, "modality": rater.study.modality}

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
        choice = fields.get("choice", "")
        if not choice:
            return render_case(request, rater, position,
                               "Please choose the image most useful for diagnosis.", 400)
        try:
            ranks = {label: int(value) for label, value in ranks_given.items()}
        except ValueError:
            return render_case(request, rater, position, "Ranks must be numbers.", 400)
        ranks.pop(choice, None)  # the choice always ranks first; the ranks order the rest
        if len(set(ranks.values())) != len(ranks):
            return render_case(request, rater, position, "Give each rank at most once.", 400)
        ranking = [choice, *sorted(ranks, key=ranks.__getitem__)] if ranks else []
        try:
            view = store.save_answer(rater, position, choice, ranking, fields.get("comment", ""))
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

    @app.get("/admin/{token}", response_class=HTMLResponse)
    def admin_page(request: Request, token: str) -> Response:
        study = study_or_404(token)
        res = study_results(store, study)
        base = str(request.base_url).rstrip("/")
        return templates.TemplateResponse(request, "admin.html", {
            "study": study, "tables": tables(res), "token": token, "n_answers": res.n_answers,
            "links": [(r.number, f"{base}/r/{r.token}") for r in store.raters(study)],
            "csrf": form_token(secret, "admin:" + token)},
            headers={"Cache-Control": "no-store"})

    @app.post("/admin/{token}/invite")
    def admin_invite(token: str, raters: int = Form(...), csrf: str = Form("")) -> Response:
        study = study_or_404(token)
        if not check_form_token(secret, "admin:" + token, csrf):
            raise HTTPException(403, "This form has expired; reload the page.")
        if not 1 <= raters <= 500:
            raise StudyError("invite between 1 and 500 raters at a time")
        store.add_raters(study, raters)
        return RedirectResponse(f"/admin/{token}#raters", status_code=303)

    @app.get("/admin/{token}/{name}")
    def admin_file(token: str, name: str) -> Response:
        study = study_or_404(token)
        if name == "answers.csv":
            body, media = answers_csv(store, study).encode(), "text/csv"
        elif name == "results.csv":
            body, media = tables_csv(study_results(store, study)).encode(), "text/csv"
        elif name == "results.png":
            body, media = figure_png(study_results(store, study)), "image/png"
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
