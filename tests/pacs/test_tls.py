"""TLS is verified: a server whose certificate no trusted CA signed is refused in one line, and
trusted once its CA is given in REQUESTS_CA_BUNDLE. The server: Python's HTTPS server on
loopback with a certificate made by openssl for the test (a JSON answer that is not DICOMweb, so
that getting past TLS shows as that error)."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest
from cli_helpers import assert_one_line_error, run


class _NotDicomweb(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the handler's name
        body = b'{"not": "dicomweb"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
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
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotDicomweb)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/dicom-web", str(cert)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_tls_is_verified(capsys, https_server, monkeypatch):
    url, cert = https_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    code, _, err = run(capsys, "pacs", "list", "--url", url, "--retries", "0")
    assert_one_line_error(code, err, url, "TLS verification failed", "REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    code, _, err = run(capsys, "pacs", "list", "--url", url, "--retries", "0")
    assert_one_line_error(code, err, url, "not DICOMweb JSON")  # past TLS: the server answered
