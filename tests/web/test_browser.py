"""A real browser: Debian's headless Chromium driven by Playwright fuses an uploaded pair and
sees the fused image, and a rater completes a small study by clicking (skipped, with the reason,
where Chromium or Playwright is missing; tests/web/test_app.py covers the same flows over HTTP)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright (python) is not installed")
if not CHROMIUM.exists() and not shutil.which("chromium"):
    pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package",
                allow_module_level=True)


#: WebGL 2 through Chromium's software renderer (SwiftShader), for NiiVue.
WEBGL_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
    "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as p:  # one per module: sync Playwright does not nest
        yield p


def launch(playwright, args: list[str]):  # noqa: ANN001, ANN201 - for the fixtures below
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    yield b
    b.close()


@pytest.fixture(scope="module")
def browser(playwright):
    yield from launch(playwright, CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def webgl_browser(playwright):
    yield from launch(playwright, WEBGL_ARGS)


def test_browser_uploads_a_pair_and_sees_the_fused_images(browser, study_server, pet_pairs):
    server, _, _ = study_server
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    page.set_input_files("#mr", str(pet_pairs / "MRI" / "25038.png"))
    page.set_input_files("#func", str(pet_pairs / "PET" / "25038.png"))
    page.uncheck("input[value=msgfusion]")
    page.check("input[value=average]")
    page.check("input[value=max]")
    page.click("#fuse-button")
    page.wait_for_selector("#results:not([hidden])", timeout=60_000)
    panels = page.locator("#panels img")
    assert panels.count() == 4  # MR, PET, two fused
    page.wait_for_function("[...document.querySelectorAll('#panels img')]"
                           ".every(i => i.complete && i.naturalWidth === 256)")
    assert page.locator("#metrics tr").count() == 3
    # synchronised zoom: a wheel event on one panel transforms every panel alike
    first = page.locator("#panels .viewport").first
    first.hover()
    page.mouse.wheel(0, -300)
    transforms = page.eval_on_selector_all("#panels .zoomable", "els => els.map(e => e.style.transform)")
    assert len(set(transforms)) == 1 and "scale(1.2" in transforms[0]
    page.fill("#opacity", "20")
    page.dispatch_event("#opacity", "input")
    assert page.eval_on_selector("#overlay-top", "e => e.style.opacity") == "0.2"
    assert errors == []
    # an error is one message on the page
    page.set_input_files("#func", {"name": "notes.png", "mimeType": "image/png",
                                   "buffer": b"not an image at all"})
    page.click("#fuse-button")
    page.wait_for_selector("#message:not([hidden])")
    assert "not a PNG, JPEG or TIFF" in page.inner_text("#message")
    page.close()


def test_a_rater_completes_a_study_in_the_browser(browser, study_server):
    server, store, study = study_server
    (rater,) = store.add_raters(study, 1)
    page = browser.new_page()
    page.goto(f"{server.url}/r/{rater.token}")
    page.click("#start")
    n = len(store.case_names(study))
    for pos in range(1, n + 1):
        page.wait_for_url(f"**/case/{pos}")
        assert f"Case {pos} of {n}" in page.inner_text(".casenav")
        page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        page.click("img[alt='option B']")  # clicking the image selects its option
        if pos == 1:
            page.select_option("#rank_A", "2")
            page.fill("textarea[name=comment]", "clearer edges")
        page.click("#save-next")
    page.wait_for_url("**/done")
    assert "All cases are answered" in page.inner_text("main")
    # go back and change one answer
    page.click("ol.cases a >> nth=0")
    page.wait_for_url("**/case/1")
    page.wait_for_load_state()
    page.click("img[alt='option C']")
    page.click("#save-next")
    page.wait_for_url("**/case/2")
    page.close()
    answers = [a for a in store.answers(study) if a["rater"] == rater.number]
    assert len(answers) == n
    first = next(a for a in answers if a["position"] == 1)
    assert first["choice_label"] == "C" and first["revisions"] == 2
    # the earlier ranks (B first, then A) now order the rest behind the new choice
    assert first["ranking"] == " > ".join(
        next(o.method for o in store.case_view(rater, 1).options if o.label == lab)
        for lab in "CBA")


def test_a_phone_shows_the_options_without_scrolling(browser, study_server):
    """On a 390 x 844 screen (a phone held upright) every option of a case is in view when the
    page opens, and nothing is wider than the screen."""
    server, store, study = study_server
    (rater,) = store.add_raters(study, 1)
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{server.url}/r/{rater.token}/case/1")
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    boxes = [page.locator(f"img[alt='option {lab}']").bounding_box() for lab in "ABC"]
    for box in boxes:
        assert box["y"] >= 0 and box["y"] + box["height"] <= 844, boxes
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, boxes
        assert box["width"] >= 120  # still large enough to judge
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#choice_C").is_visible()
    context.close()


def canvas_pixels(page, selector: str):
    """The rendered pixels of a canvas (a screenshot of it: WebGL buffers cannot be read back)."""
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB"),
                      dtype=np.int16)


def test_volumes_are_fused_and_read_in_niivue(webgl_browser, server_cls, tmp_path):
    import httpx
    import nibabel as nib
    import numpy as np

    spm = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "volumes" / "spm_oldnorm"
    server = server_cls(tmp_path).start()
    try:
        page = webgl_browser.new_page(viewport={"width": 1200, "height": 1600})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/volumes")
        page.set_input_files("#mr", str(spm / "T1.nii.gz"))
        page.set_input_files("#func", str(spm / "PET.nii.gz"))
        page.uncheck("input[value=msgfusion]")
        page.check("input[value=max]")
        page.click("#fuse-button")
        page.wait_for_function("() => window.msgfusionViewer.ready === true || "
                               "!document.getElementById('message').hidden", timeout=120_000)
        assert page.is_hidden("#message"), page.inner_text("#message")
        page.select_option("#view", "0")  # axial
        page.wait_for_timeout(500)
        fused = canvas_pixels(page, "#nv-fused")
        assert (fused.max(axis=2) > 40).mean() > 0.05, "the fused view is blank"
        assert (np.abs(fused[..., 0] - fused[..., 2]) > 40).any(), "no colour in the fused PET"
        page.fill("#slice", "800")
        page.dispatch_event("#slice", "input")
        page.wait_for_timeout(500)
        moved = canvas_pixels(page, "#nv-fused")
        assert np.abs(moved - fused).mean() > 1, "moving the slice did not change the view"
        before = canvas_pixels(page, "#nv-sources")
        page.fill("#opacity", "0")
        page.dispatch_event("#opacity", "input")
        page.wait_for_timeout(500)
        plain = canvas_pixels(page, "#nv-sources")
        assert np.abs(plain - before).mean() > 1, "the opacity slider did not change the overlay"
        colours = plain[..., :3]
        assert (np.abs(colours[..., 0] - colours[..., 2]) <= 3).mean() > 0.97, \
            "with opacity 0 the sources view should be the grey MR only"
        assert page.locator("#colorbar").is_visible() and "uptake" in page.inner_text("#cb-high")
        with page.expect_download() as download:
            page.click("#metrics a >> text=NIfTI")
        path = tmp_path / "download.nii.gz"
        download.value.save_as(path)
        assert np.allclose(nib.load(path).affine, nib.load(spm / "T1.nii.gz").affine)
        assert errors == []
        # DICOM series, each as one zip: fused and shown again
        import zipfile

        import msgfusion

        for name in ("T1", "PET"):
            series = msgfusion.write_volume(tmp_path / name,
                                            msgfusion.load_volume(spm / f"{name}.nii.gz"))
            with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as zf:
                for f in sorted(series.iterdir()):
                    zf.write(f, f.name)
        page.evaluate("() => { window.msgfusionViewer.ready = false; }")
        page.set_input_files("#mr", str(tmp_path / "T1.zip"))
        page.set_input_files("#func", str(tmp_path / "PET.zip"))
        page.select_option("#modality", "PET")
        page.click("#fuse-button")
        page.wait_for_function("() => window.msgfusionViewer.ready === true || "
                               "!document.getElementById('message').hidden", timeout=120_000)
        assert page.is_hidden("#message"), page.inner_text("#message")
        # a 4-D file: one message on the page, naming the upload
        pet = nib.load(spm / "PET.nii.gz")
        nib.save(nib.Nifti1Image(np.stack([pet.get_fdata()] * 3, -1).astype(np.float32),
                                 pet.affine), tmp_path / "dynamic.nii.gz")
        page.set_input_files("#func", str(tmp_path / "dynamic.nii.gz"))
        page.click("#fuse-button")
        page.wait_for_selector("#message:not([hidden])", timeout=60_000)
        assert "functional dynamic.nii.gz: a 4-D volume with 3 frames" in page.inner_text("#message")
        assert errors == []
        page.close()
        assert httpx.get(server.url + "/vendor/niivue.js").status_code == 200
    finally:
        server.stop()
