"""The connection rules where Orthanc cannot show them, against Python's HTTP server on loopback:
TLS is verified (a certificate no trusted CA signed is refused in one line, and trusted once its
CA is given in REQUESTS_CA_BUNDLE; the test's certificate is made by openssl), a bearer token
from the environment is sent, and a server that does not answer is a timeout, in one line."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from cli_helpers import assert_one_line_error, run


TOKEN = "test-bearer-token"


class _Server(http.server.BaseHTTPRequestHandler):
    """``/dicom-web``: JSON that is not DICOMweb; ``/token/dicom-web``: an empty study list
    for the bearer token (401 otherwise); ``/slow/dicom-web``: answers after 5 s."""

    def do_GET(self) -> None:  # noqa: N802 - the handler's name
        body, status = b'{"not": "dicomweb"}', 200
        if self.path.startswith("/token/"):
            ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            body, status = (b"[]", 200) if ok else (b"", 401)
        elif self.path.startswith("/slow/"):
            if self.server.closing.wait(5):  # type: ignore[attr-defined]
                return  # the test is over: answer nothing
        self.send_response(status)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    """Handler threads that are joined on close; a client that left (the timeout test) is
    not reported on stderr, where a later test would read it."""

    daemon_threads = False

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.closing = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path) -> Iterator[tuple[str, str]]:
    """(URL, certificate file) of an HTTPS server on loopback with a self-signed certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (it makes the test's certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server = _QuietServer(("127.0.0.1", 0), _Server)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", str(cert)
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_tls_is_verified(capsys, https_server, monkeypatch):
    root, cert = https_server
    url = f"{root}/dicom-web"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    code, _, err = run(capsys, "pacs", "list", "--url", url, "--retries", "0")
    assert_one_line_error(code, err, url, "TLS verification failed", "REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    code, _, err = run(capsys, "pacs", "list", "--url", url, "--retries", "0")
    assert_one_line_error(code, err, url, "not DICOMweb JSON")  # past TLS: the server answered


def test_bearer_token_from_the_environment_and_timeouts(capsys, https_server, monkeypatch):
    root, cert = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    for name in ("MSGFUSION_PACS_USER", "MSGFUSION_PACS_PASSWORD", "MSGFUSION_PACS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, "pacs", "list", "--url", f"{root}/token/dicom-web")
    assert_one_line_error(code, err, "refused the credentials (HTTP 401)", "MSGFUSION_PACS_TOKEN")
    monkeypatch.setenv("MSGFUSION_PACS_TOKEN", TOKEN)
    code, out, err = run(capsys, "pacs", "list", "--url", f"{root}/token/dicom-web")
    assert code == 0 and out.strip() == f"no studies on {root}/token/dicom-web", err
    start = time.monotonic()
    code, _, err = run(capsys, "pacs", "list", "--url", f"{root}/slow/dicom-web",
                       "--timeout", "0.5", "--retries", "0")
    assert_one_line_error(code, err, "cannot be reached", "timed out")
    assert time.monotonic() - start < 4
