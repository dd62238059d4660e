"""The web app's guards: upload type sniffing, request size limit, same-origin check, headers.

The threat model they answer is in docs/web.md ("Threat model").
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from msgfusion.errors import ImageReadError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Leading bytes of the image formats the fusion page accepts, with a file suffix for each.
MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png", "PNG"),
    (b"\xff\xd8\xff", ".jpg", "JPEG"),
    (b"II*\x00", ".tif", "TIFF"),
    (b"MM\x00*", ".tif", "TIFF"),
)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "same-origin",  # rater and admin links are capabilities: never leak them
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def sniff_image(data: bytes, label: str) -> str:
    """The file suffix of an uploaded image judged by its first bytes (not its name or the
    browser's content type); :class:`ImageReadError` naming ``label`` for anything else."""
    for magic, suffix, _ in MAGIC:
        if data.startswith(magic):
            return suffix
    if data[128:132] == b"DICM":  # after the DICOM preamble
        return ".dcm"
    if not data:
        raise ImageReadError(f"{label}: the file is empty")
    raise ImageReadError(f"{label}: not a PNG, JPEG or TIFF image or a DICOM file (judged by "
                         "its content)")


def safe_filename(name: str | None, default: str = "upload") -> str:
    """The base name of an uploaded file reduced to ``[A-Za-z0-9._-]`` (no folders, no dots
    in front), at most 80 characters; ``default`` when nothing is left."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:80]
    return base or default


def form_token(secret: bytes, scope: str) -> str:
    """A CSRF token for the forms of one rater or admin link (HMAC of the link's token)."""
    return hmac.new(secret, scope.encode(), hashlib.sha256).hexdigest()


def check_form_token(secret: bytes, scope: str, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(form_token(secret, scope), str(token))


class RequestTooLarge(Exception):
    """A request body exceeded the limit (turned into a 413 answer by the app)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than {limit / 2**20:.0f} MB in total")
        self.limit = limit


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes: by Content-Length before reading, and by
    counting while reading (chunked uploads), so a large upload is never held in full."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _plain(send, 413, str(RequestTooLarge(self.limit)), scope["path"])
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise RequestTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


class SameOriginMiddleware:
    """Refuse state-changing requests sent by another site (``Origin`` of another host, or
    ``Sec-Fetch-Site: cross-site``), and add the security headers to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            host = headers.get("host", "")
            cross = headers.get("sec-fetch-site") == "cross-site"
            if cross or (origin and origin.split("://", 1)[-1] != host):
                await _plain(send, 403, "cross-site request refused", scope["path"])
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                         if k.lower().encode() not in names]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, with_headers)


async def _plain(send: Send, status: int, text: str, path: str) -> None:
    """An answer sent before the app runs: ``{"error": text}`` under /api/, else plain text."""
    if path.startswith("/api/"):
        body, kind = json.dumps({"error": text}).encode(), b"application/json"
    else:
        body, kind = text.encode(), b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                            *[(k.lower().encode(), v.encode())
                              for k, v in SECURITY_HEADERS.items()]]})
    await send({"type": "http.response.body", "body": body})


#: A rater's or admin's capability in a path: ``/r/TOKEN`` or ``/admin/TOKEN``.
_CAPABILITY = re.compile(r"/(r|admin)/[^/\s?#\"']+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` with every rater and admin token in a path replaced by ``[redacted]``."""
    return _CAPABILITY.sub(rf"/\1/{REDACTED}", text)


class RedactTokens(logging.Filter):
    """A log filter that takes the capability tokens out of a record before any handler writes
    it: its message, its arguments (uvicorn's access log passes the path as one) and its
    traceback text. The links are the raters' and the admin's credentials, so whoever reads the
    log must not get them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v
                           for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def log_config(level: str = "info") -> dict:
    """uvicorn's logging configuration with :class:`RedactTokens` on every handler, and the
    ``msgfusion`` loggers (the app's error log) written beside uvicorn's."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_tokens": {"()": f"{__name__}.RedactTokens"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_tokens"]
    config["loggers"]["msgfusion"] = {"handlers": ["default"], "level": level.upper(),
                                      "propagate": False}
    return config
