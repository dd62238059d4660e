"""What anonymous fusion and the admin page cost a `msgfusion serve` with its default limits.

Over loopback, against a real server (uvicorn, one process, default options):

1. the audit's request of issue 31: two black 4096 x 4096 PNGs fused with two methods;
2. the largest request the defaults let through: two black 2048 x 2048 PNGs (--max-pixels), the
   same two methods;
3. the admin page of a study with 300 answers (20 raters x 15 cases), loaded twice: the first
   load computes the statistics (bootstrap of 9999 resamples), the second reuses them.

For each: the answer's status and time, and the server's peak resident memory (VmHWM) after it.

    PYTHONPATH=src python benchmarks/web_bounds.py      # -> the `bounds` block of docs/web.md
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from web_load import PAIRS, REPO, rewrite_block, start_server

from msgfusion.web.study import StudyStore

START, END = "<!-- bounds:start -->", "<!-- bounds:end -->"
METHODS = ("msgfusion", "max")


def black_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((side, side), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def peak_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(request) -> tuple[httpx.Response, float]:  # noqa: ANN001 - a callable
    t = time.perf_counter()
    resp = request()
    return resp, time.perf_counter() - t


def measure(data_dir: Path) -> list[tuple[str, str, float, float]]:
    store = StudyStore(data_dir)
    study = store.create_study("bounds", PAIRS, ("average", "max", "pca"), cases=15, seed=1)
    rng = np.random.default_rng(0)
    for rater in store.add_raters(study, 20):
        for pos in range(1, 16):
            store.save_answer(rater, pos, "ABC"[rng.integers(3)])
    proc, url = start_server(data_dir)
    rows = []
    try:
        print(f"server started: peak {peak_mb(proc.pid):.0f} MiB")
        for side in (4096, 2048):
            png = black_png(side)
            files = [("mr", ("mr.png", png, "image/png")), ("func", ("ct.png", png, "image/png"))]
            resp, s = timed(lambda files=files: httpx.post(
                f"{url}/api/fuse", files=files, data={"methods": list(METHODS),
                                                      "modality": "CT"}, timeout=600))
            what = (f"fuse two black {side} x {side} PNGs ({len(png) * 2 // 1000} kB together) "
                    f"with {' and '.join(METHODS)}")
            rows.append((what, f"{resp.status_code} {resp.json().get('error', '')}".strip(), s,
                         peak_mb(proc.pid)))
            print(rows[-1])
        admin = f"{url}/admin/{study.admin_token}"
        for which in ("first", "second"):
            resp, s = timed(lambda: httpx.get(admin, timeout=120))
            rows.append((f"admin page, 300 answers ({which} load)", str(resp.status_code), s,
                         peak_mb(proc.pid)))
            print(rows[-1])
    finally:
        proc.terminate()
        proc.wait(10)
    return rows


def report(rows: list[tuple[str, str, float, float]]) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = ["| request (server with default options) | answer | time (s) | server peak memory "
             "after it (MiB) |", "|---|---|---:|---:|"]
    lines += [f"| {what} | {status} | {s:.2f} | {mb:.0f} |" for what, status, s, mb in rows]
    lines += ["", f"Measured by `PYTHONPATH=src python benchmarks/web_bounds.py` on "
                  f"{platform.machine()} with {os.cpu_count()} CPU cores shared with other work "
                  f"(1-minute load average {load:.1f} at the end), Python "
                  f"{platform.python_version()}: times are upper bounds for an idle machine."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc", default=str(REPO / "docs" / "web.md"),
                        help="Markdown file whose bounds block is rewritten ('' to only print)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = report(measure(Path(tmp)))
    print(text)
    if args.doc:
        rewrite_block(Path(args.doc), START, END, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
