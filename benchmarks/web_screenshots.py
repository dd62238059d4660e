"""Screenshots of every page of the web app, taken with headless Chromium, for docs/web.md.

Creates a small study (6 PET-MRI cases, methods msgfusion/average/max, in a temporary data
folder), starts `msgfusion serve` on a free loopback port, lets three simulated raters answer,
and photographs: the fusion page with results, a rater's introduction, a case, the last page,
and the admin page.

    PYTHONPATH=src python benchmarks/web_screenshots.py      # -> docs/web_*.png
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
from pathlib import Path


from web_load import PAIRS, REPO, start_server  # noqa: I001 (the benchmark beside this file)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs"), help="folder for web_*.png")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from playwright.sync_api import sync_playwright

    from msgfusion.web.study import StudyStore

    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        store = StudyStore(tmp)
        study = store.create_study("demo", PAIRS, ["msgfusion", "average", "max"], cases=6, seed=1)
        raters = store.add_raters(study, 4)
        rng = random.Random(0)
        for r in raters[1:]:  # three raters answer every case; the first is photographed
            for pos in range(1, 7):
                store.save_answer(r, pos, rng.choice("ABC"))
        proc, url = start_server(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})

                def shot(name: str) -> None:
                    page.wait_for_function(
                        "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
                    path = out / f"web_{name}.png"
                    page.screenshot(path=str(path), full_page=True)
                    print(f"wrote {path}")

                page.goto(url + "/")
                page.set_input_files("#mr", str(PAIRS / "MRI" / "25038.png"))
                page.set_input_files("#func", str(PAIRS / "PET" / "25038.png"))
                page.check("input[value=average]")
                page.check("input[value=max]")
                page.click("#fuse-button")
                page.wait_for_selector("#results:not([hidden])", timeout=120_000)
                page.locator("#panels .viewport").first.hover()
                page.mouse.wheel(0, -400)
                shot("fuse")
                token = raters[0].token
                page.goto(f"{url}/r/{token}")
                shot("intro")
                page.click("#start")
                page.wait_for_url("**/case/1")
                page.click("img[alt='option B']")
                page.select_option("#rank_C", "1")
                shot("case")
                for pos in range(1, 7):
                    page.wait_for_url(f"**/case/{pos}")
                    page.click("img[alt='option A']")
                    page.click("#save-next")
                page.wait_for_url("**/done")
                shot("done")
                page.goto(f"{url}/admin/{study.admin_token}")
                shot("admin")
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
