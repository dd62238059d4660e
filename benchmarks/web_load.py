"""Load test of the reader study over loopback: many raters answering at once.

Creates a study (15 PET-MRI cases from ../shared/data, methods average/max/pca), invites the
raters, starts a real `msgfusion serve` (uvicorn) on a free loopback port and lets every rater,
in its own thread and HTTP connection, open each case page and submit an answer. Afterwards the
database must hold exactly one answer per (rater, case) and one logged submission per request:
0 lost, 0 duplicated. Latencies (p50/p95/max) of case pages and answers are reported.

    PYTHONPATH=src python benchmarks/web_load.py            # 50 raters x 15 cases -> docs/web.md

rewrites the block between the ``load`` markers in docs/web.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PAIRS = REPO.parent / "shared" / "data" / "aanlib" / "PET-MRI" / "test"
METHODS = ("average", "max", "pca")
START, END = "<!-- load:start -->", "<!-- load:end -->"


@dataclass
class LoadResult:
    raters: int
    cases: int
    seconds: float
    page_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def pct(self, values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, timeout: float = 60.0, extra: Sequence[str] = ()
                 ) -> tuple[subprocess.Popen, str]:
    """`msgfusion serve` (with ``extra`` options) on a free loopback port; (process, base URL)
    once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "msgfusion", "serve", "--port", str(port), "--data-dir",
         str(data_dir), "--log-level", "warning", *extra],
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/static/style.css", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def rater_session(url: str, token: str, cases: int, result: LoadResult, lock: threading.Lock,
                  choose: int) -> None:
    """One rater: the introduction, then each case page and its answer, in order."""
    csrf_re = re.compile(r'name="csrf" value="([0-9a-f]+)"')
    with httpx.Client(base_url=url, timeout=60) as client:
        try:
            client.get(f"/r/{token}").raise_for_status()
            for pos in range(1, cases + 1):
                t0 = time.perf_counter()
                page = client.get(f"/r/{token}/case/{pos}")
                t1 = time.perf_counter()
                page.raise_for_status()
                csrf = csrf_re.search(page.text).group(1)
                resp = client.post(f"/r/{token}/case/{pos}",
                                   data={"csrf": csrf, "choice": "ABC"[(choose + pos) % 3]})
                t2 = time.perf_counter()
                if resp.status_code != 303:
                    raise RuntimeError(f"answer refused: {resp.status_code}")
                with lock:
                    result.page_ms.append((t1 - t0) * 1000)
                    result.answer_ms.append((t2 - t1) * 1000)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            with lock:
                result.errors.append(f"{token[:6]}: {exc}")


def run_load(url: str, tokens: list[str], cases: int, time_limit: float = 300.0) -> LoadResult:
    """All raters at once, each in its own thread; bounded by ``time_limit`` seconds."""
    result = LoadResult(len(tokens), cases, 0.0)
    lock = threading.Lock()
    threads = [threading.Thread(target=rater_session, args=(url, t, cases, result, lock, i),
                                daemon=True) for i, t in enumerate(tokens)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, time_limit - (time.perf_counter() - t0)))
    result.seconds = time.perf_counter() - t0
    if any(t.is_alive() for t in threads):
        result.errors.append(f"not finished within {time_limit:.0f} s")
    return result


def check_database(store, study, raters: int, cases: int) -> tuple[int, int, int]:  # noqa: ANN001
    """(answers stored, distinct (rater, case), submissions logged) of the study."""
    answers = store.answers(study)
    return len(answers), len({(a["rater"], a["case_idx"]) for a in answers}), store.log_count(study)


def measure(raters: int, cases: int, data_dir: Path) -> tuple[LoadResult, tuple[int, int, int]]:
    sys.path.insert(0, str(REPO / "src"))
    from msgfusion.web.study import StudyStore

    store = StudyStore(data_dir)
    study = store.create_study("load", PAIRS, METHODS, cases=cases, seed=0)
    tokens = [r.token for r in store.add_raters(study, raters)]
    proc, url = start_server(data_dir)
    try:
        result = run_load(url, tokens, cases)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    return result, check_database(store, study, raters, cases)


def report(result: LoadResult, db: tuple[int, int, int]) -> str:
    expected = result.raters * result.cases
    stored, distinct, logged = db
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = [("case page (GET)", result.page_ms), ("answer (POST, one transaction)", result.answer_ms)]
    lines = [
        f"{result.raters} simulated raters x {result.cases} cases, all at once over loopback "
        f"(one thread and one HTTP connection per rater, each opening every case page, "
        f"HTML only, and answering it; one uvicorn process): "
        f"{expected} answers expected, {stored} stored: **{expected - distinct} lost, "
        f"{stored - distinct} duplicated** ({logged} submissions logged for {expected} sent), "
        f"{len(result.errors)} errors, {result.seconds:.1f} s in all.",
        "",
        "| request | p50 (ms) | p95 (ms) | max (ms) |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {result.pct(v, 50):.0f} | {result.pct(v, 95):.0f} | "
          f"{max(v, default=float('nan')):.0f} |" for name, v in rows],
        "",
        f"Measured on {platform.machine()} with {os.cpu_count()} CPU cores shared with other "
        f"work (1-minute load average {load:.1f} at the end), Python "
        f"{platform.python_version()}: latencies are upper bounds for an idle machine.",
    ]
    return "\n".join(lines)


def rewrite_block(doc: Path, start: str, end: str, text: str) -> None:
    """Replace what lies between the ``start`` and ``end`` markers of ``doc`` with ``text``."""
    old = doc.read_text()
    if start not in old or end not in old:
        raise SystemExit(f"{doc}: no {start} ... {end} block to rewrite")
    head, rest = old.split(start, 1)
    doc.write_text(f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")
    print(f"wrote {doc}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--cases", type=int, default=15)
    parser.add_argument("--doc", default=str(REPO / "docs" / "web.md"),
                        help="Markdown file whose load block is rewritten ('' to only print)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result, db = measure(args.raters, args.cases, Path(tmp))
    text = report(result, db)
    print(text)
    for e in result.errors[:10]:
        print("error:", e)
    if args.doc:
        rewrite_block(Path(args.doc), START, END, text)
    stored, distinct, _ = db
    ok = not result.errors and stored == distinct == args.raters * args.cases
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
