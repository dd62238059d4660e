"""Fixtures of the web tests: a real `msgfusion serve` (uvicorn) on a free loopback port, started
as a subprocess on a data folder of the test's own, and small real studies on atlas pairs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from net_helpers import free_port

from msgfusion.web.study import Study, StudyStore

REPO = Path(__file__).resolve().parents[2]
#: Fast methods for studies in tests (a study needs >= 3 for the Friedman test).
TEST_METHODS = ("average", "max", "pca")


@dataclass
class Server:
    """A `msgfusion serve` subprocess; ``url`` is its base address."""

    data_dir: Path
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    url: str = ""

    def start(self, timeout: float = 60.0) -> Server:
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        self.log_path = self.data_dir / f"server-{port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "msgfusion", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(self.data_dir), "--log-level", "warning", *self.extra],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.data_dir / f'server-{port}.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/static/style.css", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL: no shutdown handlers run)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="session")
def pet_pairs(aanlib_dir: Path) -> Path:
    return aanlib_dir / "PET-MRI" / "test"


def make_study(data_dir: Path, pairs: Path, name: str = "pilot", cases: int = 4,
               methods: tuple[str, ...] = TEST_METHODS) -> tuple[StudyStore, Study]:
    store = StudyStore(data_dir)
    return store, store.create_study(name, pairs, methods, cases=cases, seed=3)


@pytest.fixture(scope="session")
def study_server(tmp_path_factory: pytest.TempPathFactory, pet_pairs: Path
                 ) -> Iterator[tuple[Server, StudyStore, Study]]:
    """A server over a data folder with a 4-case study of three methods, shared by the tests
    (each adds raters of its own)."""
    data_dir = tmp_path_factory.mktemp("web")
    store, study = make_study(data_dir, pet_pairs)
    server = Server(data_dir, extra=("--max-upload-mb", "1", "--max-volume-mb", "1")).start()
    yield server, store, study
    server.stop()


@pytest.fixture(scope="session")
def server_cls() -> type[Server]:
    """The :class:`Server` helper, for tests that start and stop servers themselves."""
    return Server


@pytest.fixture(scope="session")
def study_maker():  # noqa: ANN201
    """:func:`make_study`, for tests that create studies themselves."""
    return make_study
