"""A reader study that holds (issue 31), over real `msgfusion serve` processes on loopback and
real SQLite: the study's lifecycle (close, reopen), a study-only server, no capability token in
any log, bounded anonymous fusion, and the smaller findings (ranks, CSV formulas, one numbering of
cases, too few raters, cached statistics, the modality menu)."""

from __future__ import annotations

import csv
import io
import re
import threading
import time

import httpx
import pytest
from PIL import Image

from msgfusion.cli import main

WEB_PIXELS = 256 * 256  # the module's server: --max-pixels 65536, one 256 x 256 atlas slice
SLOW_METHODS = ("latlrr", "wpadcpcnn", "nestfuse", "ifcnn", "fusiondn")  # > 2 s together


@pytest.fixture(scope="module")
def holds(tmp_path_factory, pet_pairs, server_cls, study_maker):
    """A server at log level info with a small pixel limit, no fusion queue and a 2 s time
    limit, over a data folder with two studies: ``pilot`` (the tests add raters) and
    ``closing`` (closed and reopened by the lifecycle test)."""
    data_dir = tmp_path_factory.mktemp("holds")
    store, study = study_maker(data_dir, pet_pairs)
    _, closing = study_maker(data_dir, pet_pairs, name="closing", cases=2)
    server = server_cls(data_dir, extra=("--log-level", "info", "--max-pixels", str(WEB_PIXELS),
                                         "--fusion-queue", "0", "--fusion-timeout", "2")).start()
    yield server, store, study, closing
    server.stop()


def form(client: httpx.Client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def post_answer(client, url, token, position, choice, **extra):
    csrf = form(client, f"{url}/r/{token}/case/{position}")
    return client.post(f"{url}/r/{token}/case/{position}",
                       data={"csrf": csrf, "choice": choice, **extra})


def cli(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def pair_png(path, size: int | None = None) -> bytes:
    img = Image.open(path)
    if size:
        img = img.resize((size, size))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def fuse_request(url, mr, func, methods):
    files = [("mr", ("mr.png", mr, "image/png")), ("func", ("pet.png", func, "image/png"))]
    return httpx.post(f"{url}/api/fuse", files=files, data={"methods": list(methods)},
                      timeout=120)


# -- 1. the lifecycle ---------------------------------------------------------------------------

def test_closed_study_refuses_answers_and_says_so(holds, capsys):
    server, store, _, study = holds
    url, data = server.url, ("--data-dir", str(store.data_dir))
    (rater,) = store.add_raters(study, 1)
    token = rater.token
    with httpx.Client() as client:
        assert post_answer(client, url, token, 1, "A", comment="first").status_code == 303
        csrf = form(client, f"{url}/r/{token}/case/2")
        out = cli(capsys, "study", "close", study.name, *data)
        assert re.search(r"closed study 'closing' at \d{4}-\d\d-\d\dT", out)
        # an answer sent after the close (a page opened before it) is refused, nothing changes
        late = client.post(f"{url}/r/{token}/case/1", data={"csrf": csrf, "choice": "B",
                                                            "comment": "changed"})
        assert late.status_code == 409 and "This study is closed" in late.text
        late = client.post(f"{url}/r/{token}/case/2", data={"csrf": csrf, "choice": "B"})
        assert late.status_code == 409
        (kept,) = [a for a in store.answers(study) if a["rater"] == rater.number]
        assert kept["comment"] == "first" and kept["revisions"] == 1
        # the pages say it and offer no form; the done page tells the truth
        page = client.get(f"{url}/r/{token}/case/1").text
        assert "This study is closed" in page and "<form" not in page
        done = client.get(f"{url}/r/{token}/done").text
        assert "closed" in done and "until the study closes" not in done
        for text in (late.text, page, done):  # still blind
            assert not re.search("|".join(rf"\b{m}\b" for m in study.methods), text, re.I)
        # the results record when it closed
        closed_at = store.get_study(study.name).closed_at
        assert closed_at and closed_at in client.get(f"{url}/admin/{study.admin_token}").text
        results = cli(capsys, "study", "results", study.name, *data)
        assert f"closed {closed_at}" in results
        assert main(["study", "close", study.name, *data]) == 2
        assert "already closed" in capsys.readouterr().err
        # reopened: answers are taken again
        assert "reopened study 'closing'" in cli(capsys, "study", "reopen", study.name, *data)
        assert post_answer(client, url, token, 2, "B").status_code == 303
        done = client.get(f"{url}/r/{token}/done").text
        assert "until the study is closed" in done


def test_admin_closes_and_reopens_with_a_form_token(holds):
    server, store, _, study = holds
    admin = f"{server.url}/admin/{study.admin_token}"
    with httpx.Client() as client:
        assert client.post(f"{admin}/close", data={"csrf": "0" * 64}).status_code == 403
        assert store.get_study(study.name).closed_at is None
        page = client.get(admin).text
        assert 'action="/admin/' in page and "Close the study" in page
        resp = client.post(f"{admin}/close", data={"csrf": form(client, admin)})
        assert resp.status_code == 303 and store.get_study(study.name).closed_at
        assert "Reopen the study" in client.get(admin).text
        resp = client.post(f"{admin}/reopen", data={"csrf": form(client, admin)})
        assert resp.status_code == 303 and store.get_study(study.name).closed_at is None


# -- 2. a study-only server -----------------------------------------------------------------------

def test_study_only_server_serves_the_studies_and_nothing_else(tmp_path, pet_pairs, server_cls,
                                                                study_maker):
    store, study = study_maker(tmp_path, pet_pairs, cases=2)
    (rater,) = store.add_raters(study, 1)
    mr = (pet_pairs / "MRI" / "25038.png").read_bytes()
    func = (pet_pairs / "PET" / "25038.png").read_bytes()
    server = server_cls(tmp_path, extra=("--study-only",)).start()
    try:
        assert httpx.get(server.url + "/").status_code == 404
        assert fuse_request(server.url, mr, func, ("average",)).status_code == 404
        assert httpx.get(server.url + "/static/fuse.js").status_code == 404
        assert httpx.get(server.url + "/volumes").status_code == 404
        assert httpx.post(server.url + "/api/volume-jobs", files=[("mr", ("a.nii", b"x"))],
                          data={"methods": ["average"]}).status_code == 404
        with httpx.Client() as client:
            assert post_answer(client, server.url, rater.token, 1, "A").status_code == 303
            assert client.get(f"{server.url}/admin/{study.admin_token}").status_code == 200
    finally:
        server.stop()
    assert len(store.answers(study)) == 1


# -- 3. no token in a log -------------------------------------------------------------------------

def test_capability_tokens_never_reach_the_log(holds):
    server, store, study, _ = holds
    (rater,) = store.add_raters(study, 1)
    url = server.url
    with httpx.Client() as client:
        post_answer(client, url, rater.token, 1, "A")
        client.get(f"{url}/r/{rater.token}/case/1/image/A")
        client.get(f"{url}/admin/{study.admin_token}")
        client.get(f"{url}/admin/{study.admin_token}/answers.csv")
        guessed = "G" * 43
        assert client.get(f"{url}/r/{guessed}").status_code == 404
        # an internal error on a rater's path: logged with its traceback, without the token
        victim = study.source_path(store.case_view(rater, 1).case_idx, "mr")
        saved = victim.read_bytes()
        victim.unlink()
        try:
            assert client.get(f"{url}/r/{rater.token}/case/1/image/mr").status_code == 500
        finally:
            victim.write_bytes(saved)
    time.sleep(0.5)
    log = server.log_path.read_text()
    assert '"GET /r/' in log and '"GET /admin/' in log  # the access log is on
    assert "Traceback" in log and "internal error" in log
    for secret in (rater.token, study.admin_token, guessed):
        assert secret not in log
    assert "/r/[redacted]/case/1" in log


# -- 4. bounded anonymous fusion ------------------------------------------------------------------

def test_max_pixels_bounds_uploads_and_the_help_says_so(holds, pet_pairs, capsys):
    server, _, _, _ = holds
    mr, func = pet_pairs / "MRI" / "25038.png", pet_pairs / "PET" / "25038.png"
    resp = fuse_request(server.url, pair_png(mr, 512), pair_png(func, 512), ("average",))
    assert resp.status_code == 400
    assert resp.json()["error"] == ("MR image mr.png: 512 x 512 = 262,144 pixels, above this "
                                    "server's limit of 65,536 (--max-pixels)")
    assert fuse_request(server.url, mr.read_bytes(), func.read_bytes(),
                        ("average",)).status_code == 200
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "largest image the fusion page accepts" in text and "--fusion-queue" in text


def test_fusion_jobs_are_queued_with_a_time_limit(holds, pet_pairs):
    """No queue beyond the one running job: a second request meanwhile is told the server is
    busy (503, Retry-After); a job past the 2 s time limit is stopped with a 503."""
    server, _, _, _ = holds
    mr = (pet_pairs / "MRI" / "25038.png").read_bytes()
    func = (pet_pairs / "PET" / "25038.png").read_bytes()
    slow: dict[str, httpx.Response] = {}

    def run_slow() -> None:  # again while one of the fast requests below holds the only turn
        while "r" not in slow or "busy" in slow["r"].json().get("error", ""):
            slow["r"] = fuse_request(server.url, mr, func, SLOW_METHODS)

    worker = threading.Thread(target=run_slow)
    worker.start()
    busy = []
    while worker.is_alive() and not busy:
        resp = fuse_request(server.url, mr, func, ("average",))
        if resp.status_code == 503:
            busy.append(resp)
        time.sleep(0.05)
    worker.join()
    assert busy, "no request was refused while the slow job ran"
    assert "busy" in busy[0].json()["error"] and busy[0].headers["retry-after"].isdigit()
    assert slow["r"].status_code == 503
    assert "time limit of 2 s" in slow["r"].json()["error"]
    # the gate is free again
    assert fuse_request(server.url, mr, func, ("average",)).status_code == 200


# -- 5. the smaller findings ----------------------------------------------------------------------

@pytest.mark.parametrize("ranks", [{"rank_B": "-5"}, {"rank_B": "99"}, {"rank_B": "0"},
                                   {"rank_B": "2", "rank_C": "2"}, {"rank_B": "x"}])
def test_ranks_out_of_range_or_repeated_are_refused(holds, ranks):
    server, store, study, _ = holds
    (rater,) = store.add_raters(study, 1)
    with httpx.Client() as client:
        resp = post_answer(client, server.url, rater.token, 1, "A", **ranks)
    assert resp.status_code == 400 and "rank" in resp.text.lower()
    assert not [a for a in store.answers(study) if a["rater"] == rater.number]


@pytest.mark.parametrize("cell, safe", [("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
                                        ("+A1", "'+A1"), ("+1", "+1"), ("-cmd", "'-cmd"), ("@SUM(A1)", "'@SUM(A1)"),
                                        ("\tx", "'\tx"), ("\rx", "'\rx"), ("fine", "fine"),
                                        (-0.5, -0.5), ("-0.5", "-0.5"), (3, 3), ("", "")])
def test_spreadsheet_safe(cell, safe):
    from msgfusion.io.files import spreadsheet_safe

    assert spreadsheet_safe(cell) == safe


def test_metric_tables_neutralise_formulas_in_image_names():
    """``msgfusion evaluate``'s CSV (image names come from the user's files) uses the same rule."""
    import numpy as np

    from msgfusion.evaluation import EvaluationTable

    table = EvaluationTable(("=1+1", "@cmd", "brain"), ("EN", "SD"),
                            np.array([[1.5, -2.0], [3.0, 4.0], [5.0, 6.0]]))
    rows = list(csv.reader(io.StringIO(table.to_csv())))
    assert [r[0] for r in rows] == ["image", "'=1+1", "'@cmd", "brain"]
    assert rows[1][2] == "-2.0"  # a number stays a number


def test_csv_neutralises_formulas_and_numbers_cases_as_the_results(holds):
    server, store, study, _ = holds
    (rater,) = store.add_raters(study, 1)
    formula = '=HYPERLINK("http://evil.example","click")'
    with httpx.Client() as client:
        assert post_answer(client, server.url, rater.token, 1, "A",
                           comment=formula).status_code == 303
    admin = f"{server.url}/admin/{study.admin_token}"
    rows = list(csv.DictReader(io.StringIO(httpx.get(f"{admin}/answers.csv").text)))
    (mine,) = [r for r in rows if r["comment"].endswith(formula)]
    assert mine["comment"] == "'" + formula
    # one numbering: the case of an answer in answers.csv is the case of the results' table
    results = list(csv.reader(io.StringIO(httpx.get(f"{admin}/results.csv").text)))
    start = results.index(["case", "pair", *study.methods, "answers"]) + 1
    case_of_pair = {r[1]: r[0] for r in results[start:start + len(store.case_names(study))]}
    assert sorted(case_of_pair.values(), key=int) == [str(i + 1) for i in range(len(case_of_pair))]
    for r in rows:
        assert r["case"] == case_of_pair[r["pair_name"]]


def test_too_few_complete_raters_are_said_not_a_bare_p(tmp_path, pet_pairs, study_maker, capsys):
    store, study = study_maker(tmp_path, pet_pairs, name="one", cases=3)
    (rater,) = store.add_raters(study, 1)
    for pos in (1, 2, 3):
        store.save_answer(rater, pos, "A")
    out = cli(capsys, "study", "results", "one", "--data-dir", str(tmp_path), "-o",
              str(tmp_path / "out"))
    friedman = out.split("Friedman test")[1].split("\n\n")[0]
    assert "not reported: 1 rater answered every case; needs at least 3" in friedman
    assert not re.search(r"\d\.\d{4}", friedman)
    posthoc = out.split("Post-hoc")[1].split("\n\n")[0]
    assert "needs at least 3" in posthoc and not re.search(r"\d\.\d{4}", posthoc)


def test_admin_statistics_are_cached_until_an_answer_changes(holds):
    server, store, study, _ = holds
    admin = f"{server.url}/admin/{study.admin_token}"

    def stamp() -> str:
        return re.search(r'id="computed">([^<]+)<', httpx.get(admin).text).group(1)

    first = stamp()
    assert stamp() == first  # not recomputed
    (rater,) = store.add_raters(study, 1)
    with httpx.Client() as client:
        assert post_answer(client, server.url, rater.token, 1, "B").status_code == 303
    second = stamp()
    assert second != first and stamp() == second


def test_modality_menu_does_not_call_every_colour_image_pet(holds, aanlib_dir):
    server, _, _, _ = holds
    page = httpx.get(server.url + "/").text
    assert "colour: PET)" not in page and "colour: PET or SPECT" in page
    folder = aanlib_dir / "SPECT-MRI" / "test"
    name = sorted((folder / "MRI").iterdir())[0].name
    resp = fuse_request(server.url, (folder / "MRI" / name).read_bytes(),
                        (folder / "SPECT" / name).read_bytes(), ("average",))
    assert resp.status_code == 200 and resp.json()["modality"] == "SPECT"
