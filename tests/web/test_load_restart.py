"""Durability and concurrency over loopback: a server killed mid-study loses nothing, and many
raters answering at once lose or duplicate nothing (a smaller run of benchmarks/web_load.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading

import httpx

from .conftest import REPO


def load_benchmark():
    spec = importlib.util.spec_from_file_location("web_load", REPO / "benchmarks" / "web_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("web_load", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_concurrent_raters_lose_and_duplicate_nothing(tmp_path, study_maker, pet_pairs,
                                                      server_cls):
    bench = load_benchmark()
    raters, cases = 15, 15
    store, study = study_maker(tmp_path, pet_pairs, name="load", cases=cases)
    tokens = [r.token for r in store.add_raters(study, raters)]
    server = server_cls(tmp_path).start()
    try:
        result = bench.run_load(server.url, tokens, cases, time_limit=120)
    finally:
        server.stop()
    assert result.errors == []
    stored, distinct, logged = bench.check_database(store, study, raters, cases)
    assert stored == distinct == logged == raters * cases
    assert len(result.answer_ms) == raters * cases
    print("\n" + bench.report(result, (stored, distinct, logged)))


def test_killed_server_loses_no_acknowledged_answer(tmp_path, study_maker, pet_pairs,
                                                    server_cls):
    cases = 4
    store, study = study_maker(tmp_path, pet_pairs, name="restart", cases=cases)
    raters = store.add_raters(study, 4)
    server = server_cls(tmp_path).start()
    acknowledged: set[tuple[int, int]] = set()
    lock, stop = threading.Lock(), threading.Event()

    def rater(r) -> None:  # answers its cases until the server dies under it
        try:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                for pos in range(1, cases + 1):
                    if stop.is_set():
                        return
                    page = client.get(f"/r/{r.token}/case/{pos}").text
                    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
                    resp = client.post(f"/r/{r.token}/case/{pos}",
                                       data={"csrf": csrf, "choice": "A"})
                    if resp.status_code == 303:
                        with lock:
                            acknowledged.add((r.number, pos))
                    if pos == 2:
                        stop.wait(30)  # half-way: wait for the kill
        except httpx.HTTPError:
            pass

    threads = [threading.Thread(target=rater, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    while True:  # kill as soon as every rater is half-way through
        with lock:
            if len(acknowledged) >= 2 * len(raters):
                break
        threads[0].join(0.05)
    server.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acknowledged) == 2 * len(raters)

    server = server_cls(tmp_path).start()  # a fresh process on the same data folder
    try:
        stored = {(a["rater"], a["position"]) for a in store.answers(study)}
        assert acknowledged <= stored
        with httpx.Client(base_url=server.url) as client:
            for r in raters:
                intro = client.get(f"/r/{r.token}").text
                assert "Answered 2 of 4" in intro and ">Continue<" in intro
                assert f'href="/r/{r.token}/case/3"' in intro  # resume where they stopped
                for pos in (3, 4):
                    page = client.get(f"/r/{r.token}/case/{pos}").text
                    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
                    assert client.post(f"/r/{r.token}/case/{pos}",
                                       data={"csrf": csrf, "choice": "B"}).status_code == 303
    finally:
        server.stop()
    answers = store.answers(study)
    assert len(answers) == len({(a["rater"], a["case_idx"]) for a in answers}) == 4 * cases
