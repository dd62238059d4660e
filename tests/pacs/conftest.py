"""A real PACS for the tests: Orthanc with its DICOMweb plugin, started on loopback with a
temporary configuration and storage (tests/orthanc_server.py). Tests skip, saying why, where
Orthanc is not installed (``.ci/run`` installs it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("requests")
pytest.importorskip("dicomweb_client")

from orthanc_server import PASSWORD, USER, Orthanc, missing, running_orthanc  # noqa: E402


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> Iterator[Orthanc]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture
def credentials(monkeypatch) -> None:
    """The test PACS's user and password in the environment, as a user sets them."""
    monkeypatch.setenv("MSGFUSION_PACS_USER", USER)
    monkeypatch.setenv("MSGFUSION_PACS_PASSWORD", PASSWORD)
    monkeypatch.delenv("MSGFUSION_PACS_TOKEN", raising=False)
