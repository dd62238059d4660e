"""Orthanc with its DICOMweb plugin (Debian packages ``orthanc``, ``orthanc-dicomweb``) started on
loopback with a temporary configuration and storage, HTTP basic authentication on: the PACS of
the PACS tests (tests/pacs/conftest.py) and of benchmarks/dicom.py."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from net_helpers import free_port

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
USER, PASSWORD = "radiology", "fusion-test-password"
#: Orthanc refuses (Lua filter) the third image of a series described so, to test a store that
#: fails half-way.
REFUSED_DESCRIPTION = "refused by the test PACS"


def missing() -> str | None:
    """Why Orthanc cannot be started here, or None."""
    if shutil.which("Orthanc") is None or dicomweb_plugin() is None:
        return ("Orthanc with its DICOMweb plugin is not installed (Debian packages orthanc, "
                "orthanc-dicomweb; .ci/run installs them)")
    return None


def dicomweb_plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        found = sorted(folder.glob("libOrthancDicomWeb.so*")) if folder.is_dir() else []
        if found:
            return found[0]
    return None


@dataclass
class Orthanc:
    """A running Orthanc: its DICOMweb root and its own REST API (to check what it holds)."""

    url: str
    session: Any  # requests.Session with the credentials

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def upload(self, datasets) -> None:  # type: ignore[no-untyped-def]
        for ds in datasets:
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            self.session.post(f"{self.url}/instances", data=buffer.getvalue()).raise_for_status()

    def find(self, level: str, **query: str) -> list[dict]:
        answer = self.session.post(f"{self.url}/tools/find",
                                   json={"Level": level, "Query": query, "Expand": True})
        answer.raise_for_status()
        return answer.json()

    def snapshot(self) -> dict[str, str]:
        """Every instance the PACS holds: Orthanc ID -> MD5 of its stored file."""
        ids = self.session.get(f"{self.url}/instances").json()
        return {i: self.session.get(f"{self.url}/instances/{i}/attachments/dicom/md5").text
                for i in ids}

    def file(self, instance_id: str) -> bytes:
        return self.session.get(f"{self.url}/instances/{instance_id}/file").content


@contextmanager
def running_orthanc(root: Path) -> Iterator[Orthanc]:
    """Start Orthanc with its configuration and storage under ``root``; stopped afterwards."""
    import requests

    (root / "filter.lua").write_text(
        "function ReceivedInstanceFilter(dicom, origin, info)\n"
        f"  return not (dicom.SeriesDescription == '{REFUSED_DESCRIPTION}' and "
        "tonumber(dicom.InstanceNumber) == 3)\n"
        "end\n")
    port = free_port()
    config = {
        "Name": "msgfusion-test", "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "storage"), "HttpPort": port, "DicomServerEnabled": False,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD}, "Plugins": [str(dicomweb_plugin())],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "LuaScripts": [str(root / "filter.lua")],
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    url = f"http://127.0.0.1:{port}"
    with open(root / "orthanc.log", "w") as log:
        process = subprocess.Popen([str(shutil.which("Orthanc")), str(root / "orthanc.json")],
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if session.get(f"{url}/system", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    text = (root / "orthanc.log").read_text()[-2000:]
                    raise RuntimeError(f"Orthanc did not start: {text}")
                time.sleep(0.1)
            yield Orthanc(url, session)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
