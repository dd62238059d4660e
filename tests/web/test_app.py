"""The app over a real `msgfusion serve` on loopback: the fusion page (upload, results, metrics,
download, errors), the security guards, and a full small study through httpx (no browser)."""

from __future__ import annotations

import csv
import io
import re

import httpx
import numpy as np
import pytest
from PIL import Image

from msgfusion.api import fuse
from msgfusion.cli import main
from msgfusion.io.color import DEFAULT_COLOR_MODE
from msgfusion.metrics import PAPER_METRICS, evaluate_images
from msgfusion.pair import load_pair


@pytest.fixture(scope="module")
def pair_files(pet_pairs):
    return pet_pairs / "MRI" / "25038.png", pet_pairs / "PET" / "25038.png"


def upload(url, mr_bytes, func_bytes, methods=("average",), **form):
    files = [("mr", ("brain mr.png", mr_bytes, "image/png")),
             ("func", ("pet.png", func_bytes, "image/png"))]
    data = {"methods": list(methods), **form}
    return httpx.post(f"{url}/api/fuse", files=files, data=data, timeout=120)


def test_fusion_page_lists_methods_and_default_colour(study_server):
    server, _, _ = study_server
    page = httpx.get(server.url + "/").text
    assert 'value="average"' in page and 'value="msgfusion" checked' in page
    assert f'value="{DEFAULT_COLOR_MODE}" selected' in page
    assert httpx.get(server.url + "/static/fuse.js").status_code == 200


def test_upload_fuses_through_the_api_with_metrics_and_download(study_server, pair_files):
    server, _, _ = study_server
    mr, func = pair_files
    resp = upload(server.url, mr.read_bytes(), func.read_bytes(), methods=("average", "max"))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["modality"] == "PET" and data["color"] == DEFAULT_COLOR_MODE
    assert data["warnings"] == []
    assert [r["method"] for r in data["results"]] == ["average", "max"]
    pair = load_pair(mr, func)
    for r in data["results"]:
        expected = fuse(pair, method=r["method"])  # the API's default colour
        img = httpx.get(server.url + r["url"])
        assert img.headers["content-type"] == "image/png"
        got = np.asarray(Image.open(io.BytesIO(img.content)), dtype=np.float32) / 255
        assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6
        scores = evaluate_images(pair.mr, pair.func, expected, "paper")
        assert list(r["metrics"]) == list(PAPER_METRICS)
        assert r["metrics"] == pytest.approx({k: round(v, 4) for k, v in scores.items()})
        dl = httpx.get(server.url + r["download"])
        assert f'fused-PET-{r["method"]}-{DEFAULT_COLOR_MODE}.png' in dl.headers["content-disposition"]
        assert dl.content == img.content
    for s in data["sources"]:
        assert httpx.get(server.url + s["url"]).status_code == 200


@pytest.mark.parametrize("case", ["text", "truncated", "mismatch", "too_large", "method", "none"])
def test_upload_errors_are_one_clear_message(study_server, pair_files, tmp_path, case):
    server, _, _ = study_server
    mr, func = (p.read_bytes() for p in pair_files)
    methods = ("average",)
    if case == "text":
        func, expect = b"hello, not an image", "functional image pet.png: not a PNG, JPEG or TIFF"
    elif case == "truncated":
        func, expect = func[:200], "functional image pet.png"
    elif case == "mismatch":
        small = io.BytesIO()
        Image.open(pair_files[1]).resize((128, 128)).save(small, "PNG")
        func, expect = small.getvalue(), "MR image brain_mr.png is 256x256 but functional image"
    elif case == "too_large":  # the server runs with --max-upload-mb 1
        func, expect = b"\x89PNG\r\n\x1a\n" + bytes(1_200_000), "larger than 1 MB"
    elif case == "method":
        methods, expect = ("nosuch",), "unknown method 'nosuch'"
    else:
        methods, expect = (), "methods"
    resp = upload(server.url, mr, func, methods=methods)
    assert resp.status_code in (400, 413)
    message = resp.json()["error"]
    assert expect in message and "\n" not in message
    assert "Traceback" not in resp.text and "/tmp" not in message


def test_whole_request_limit_refuses_before_reading(study_server):
    server, _, _ = study_server
    resp = httpx.post(server.url + "/api/fuse", content=bytes(3 * 2**20),
                      headers={"content-type": "multipart/form-data; boundary=x"})
    assert resp.status_code == 413 and "larger than 2 MB in total" in resp.json()["error"]


def test_guards_traversal_cross_site_tokens_and_no_traceback(study_server):
    server, store, study = study_server
    url = server.url
    for path in ("/static/../studies.sqlite", "/static/%2e%2e/studies.sqlite",
                 "/static/..%2fstudies.sqlite", f"/admin/{'x' * 43}", "/r/nosuchtoken",
                 f"/admin/{study.admin_token}/..%2f..%2fstudies.sqlite"):
        resp = httpx.get(url + path)
        assert resp.status_code == 404, path
        assert b"SQLite" not in resp.content
    (rater,) = store.add_raters(study, 1)
    case = f"{url}/r/{rater.token}/case/1"
    page = httpx.get(case).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    assert httpx.get(f"{url}/r/{rater.token}/case/1/image/..%2f..%2fmr").status_code == 404
    # another site posting into a rater's form: refused by origin, and without the form token
    evil = httpx.post(case, data={"csrf": csrf, "choice": "A"},
                      headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    assert httpx.post(case, data={"csrf": csrf, "choice": "A"},
                      headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert httpx.post(case, data={"csrf": "0" * 64, "choice": "A"}).status_code == 403
    assert httpx.post(f"{url}/admin/{study.admin_token}/invite",
                      data={"raters": "1"}).status_code == 403
    assert not [a for a in store.answers(study) if a["rater"] == rater.number]
    headers = httpx.get(case).headers
    assert headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    # an internal failure (an image file gone) is a plain message, the traceback stays in the log
    victim = study.source_path(store.case_view(rater, 1).case_idx, "mr")
    saved = victim.read_bytes()
    victim.unlink()
    try:
        resp = httpx.get(f"{case}/image/mr")
    finally:
        victim.write_bytes(saved)
    assert resp.status_code == 500 and "Internal error" in resp.text
    assert "Traceback" not in resp.text and "FileNotFoundError" not in resp.text


def answer(client, url, token, position, choice, **extra):
    page = client.get(f"{url}/r/{token}/case/{position}")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    return client.post(f"{url}/r/{token}/case/{position}",
                       data={"csrf": csrf, "choice": choice, **extra})


def cli(capsys, *argv: str) -> str:
    """Run the command line in this process; its standard output (exit code 0 asserted)."""
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_full_study_by_several_raters_cli_and_admin(study_server, tmp_path, capsys):
    server, store, study = study_server
    invite = cli(capsys, "study", "invite", study.name, "--raters", "3",
                 "--data-dir", str(store.data_dir), "--base-url", server.url)
    links = re.findall(r"rater \d+: (\S+)", invite)
    assert len(links) == 3 and all(link.startswith(server.url + "/r/") for link in links)
    tokens = [link.rsplit("/", 1)[1] for link in links]
    n = 4
    with httpx.Client() as client:
        for i, token in enumerate(tokens):
            intro = client.get(f"{server.url}/r/{token}").text
            assert f"You will see <strong>{n}</strong> cases" in intro and ">Start<" in intro
            for pos in range(1, n + 1):
                resp = answer(client, server.url, token, pos, "ABC"[(pos + i) % 3],
                              rank_B="2" if (pos + i) % 3 == 0 else "", comment=f"r{i} c{pos}")
                assert resp.status_code == 303
                assert resp.headers["location"].endswith(
                    f"/case/{pos + 1}" if pos < n else "/done")
            assert "All cases are answered" in client.get(f"{server.url}/r/{token}/done").text
        # go back and change: the answer is updated, never duplicated
        resp = answer(client, server.url, tokens[0], 2, "C", go="back")
        assert resp.headers["location"].endswith("/case/1")
        assert 'value="C" checked' in client.get(f"{server.url}/r/{tokens[0]}/case/2").text
        # a missing choice or a repeated rank is refused with a message, nothing stored
        bad = answer(client, server.url, tokens[0], 3, "", comment="x")
        assert bad.status_code == 400 and "Please choose" in bad.text
        bad = answer(client, server.url, tokens[0], 3, "A", rank_B="1", rank_C="1")
        assert bad.status_code == 400 and "at most once" in bad.text
    mine = [a for a in store.answers(study) if a["rater"] in
            {store.rater(t).number for t in tokens}]
    assert len(mine) == 3 * n
    assert len({(a["rater"], a["case_idx"]) for a in mine}) == 3 * n
    changed = [a for a in mine if a["revisions"] == 2]
    assert len(changed) == 1 and changed[0]["position"] == 2
    # the admin page and its files
    admin = httpx.get(f"{server.url}/admin/{study.admin_token}")
    assert admin.status_code == 200 and "Choices per case" in admin.text
    assert "Fleiss" in admin.text and "Bradley-Terry" in admin.text
    rows = list(csv.DictReader(io.StringIO(
        httpx.get(f"{server.url}/admin/{study.admin_token}/answers.csv").text)))
    assert len(rows) == len(store.answers(study))
    fig = httpx.get(f"{server.url}/admin/{study.admin_token}/results.png")
    assert Image.open(io.BytesIO(fig.content)).size[0] > 500
    # the command line reads the same data folder
    out = cli(capsys, "study", "results", study.name, "--data-dir", str(store.data_dir),
              "-o", str(tmp_path / "res"))
    total = re.search(r"^all\s+(.*)$", out, re.M).group(1).split()
    assert int(total[-1]) == len(store.answers(study))
    assert {p.name for p in (tmp_path / "res").iterdir()} == {"answers.csv", "results.csv",
                                                               "results.png"}
    argv = ["study", "results", study.name, "--data-dir", str(store.data_dir), "-o",
            str(tmp_path / "res")]
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["study", "results", "nosuch", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"msgfusion: error: no study named 'nosuch' in {tmp_path} "
        "(create it with `msgfusion study create`)")


def test_cli_create_and_invite_print_links(tmp_path, pet_pairs, capsys):
    create = cli(capsys, "study", "create", "cli", "--pairs", str(pet_pairs), "--methods",
                 "average", "max", "--cases", "2", "--seed", "5", "--data-dir", str(tmp_path))
    assert "created study 'cli': 2 PET-MRI cases x 2 methods (average, max)" in create
    assert re.search(r"admin page \(keep it private\): http://127\.0\.0\.1:8000/admin/[\w-]{43}$",
                     create, re.M)
    invite = cli(capsys, "study", "invite", "cli", "--raters", "2", "--data-dir", str(tmp_path))
    assert len(re.findall(r"^rater [12]: http://127\.0\.0\.1:8000/r/[\w-]{43}$", invite, re.M)) == 2


def test_upload_tiff_and_jpeg_ct_pair_gives_grey_results(study_server, aanlib_dir):
    server, _, _ = study_server
    folder = aanlib_dir / "CT-MRI" / "test"
    name = sorted((folder / "MRI").iterdir())[0].name
    encoded = []
    for sub, fmt in (("MRI", "TIFF"), ("CT", "JPEG")):
        buf = io.BytesIO()
        Image.open(folder / sub / name).convert("L").save(buf, fmt)
        encoded.append(buf.getvalue())
    resp = upload(server.url, *encoded, methods=("max",))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["modality"] == "CT" and data["sources"][1]["label"] == "CT"
    assert data["warnings"] == []
    fused = Image.open(io.BytesIO(httpx.get(server.url + data["results"][0]["url"]).content))
    assert fused.mode == "L"


def test_upload_warnings_are_shown_with_the_result(study_server, pair_files):
    """A colour MR is used as grey: the result comes with that warning, naming the upload."""
    server, _, _ = study_server
    rgb = np.asarray(Image.open(pair_files[0]).convert("RGB")).copy()
    rgb[..., 0] //= 2  # a real colour image, not grey stored as RGB
    colour = io.BytesIO()
    Image.fromarray(rgb).save(colour, "PNG")
    resp = upload(server.url, colour.getvalue(), pair_files[1].read_bytes())
    assert resp.status_code == 200, resp.text
    assert resp.json()["warnings"] == [
        "MR image brain_mr.png is a colour image; it is fused as grey (its luminance)"]


def test_upload_of_single_dicom_images_fuses_like_pngs(study_server, pair_files):
    """Two exported DICOM files (RGB Secondary Capture, no geometry) are a 2-D pair."""
    from dicom_helpers import png_uint8, secondary_capture

    server, _, _ = study_server
    encoded = []
    for path in pair_files:
        buffer = io.BytesIO()
        secondary_capture(png_uint8(path, rgb=True)).save_as(buffer, enforce_file_format=True)
        encoded.append(buffer.getvalue())
    resp = upload(server.url, *encoded, methods=("average",))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["modality"] == "PET"
    expected = fuse(load_pair(*pair_files), method="average")
    got = Image.open(io.BytesIO(httpx.get(server.url + data["results"][0]["url"]).content))
    assert np.abs(np.asarray(got, dtype=np.float32) / 255 - expected).max() <= 0.5 / 255 + 1e-6
