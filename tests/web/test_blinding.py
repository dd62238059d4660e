"""Blinding: nothing a rater's browser can reach names or identifies a method.

Starting from a rater's link, every page, stylesheet, script and image reachable by following
links, image sources and form targets is fetched (and each case page after an answer, with the
error page of a bad answer); every text and header is searched for the study's method names,
their descriptions and references, the product's name and the pairs' file names, and every
image is checked to be a metadata-free PNG of the same byte length as the other options.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import httpx

from msgfusion.methods.registry import get_method


def png_chunk_types(data: bytes) -> set[bytes]:
    pos, kinds = 8, set()
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kinds.add(data[pos + 4:pos + 8])
        pos += 12 + length
    return kinds


def crawl(client: httpx.Client, start: str) -> dict[str, httpx.Response]:
    """Every same-origin URL reachable from ``start`` through href/src/action attributes."""
    origin = urlparse(start).netloc
    seen: dict[str, httpx.Response] = {}
    todo = [start]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        resp = client.get(url)
        seen[url] = resp
        if resp.headers.get("content-type", "").startswith(("text/html", "text/css")):
            for ref in re.findall(r'(?:href|src|action)="([^"#]+)', resp.text):
                target = urljoin(url, ref)
                if urlparse(target).netloc == origin:
                    todo.append(target)
    return seen


def test_nothing_a_rater_can_reach_identifies_a_method(study_server):
    server, store, study = study_server
    (rater,) = store.add_raters(study, 1)
    start = f"{server.url}/r/{rater.token}"
    forbidden = {"msgfusion"}
    for name in study.methods:
        m = get_method(name)
        forbidden |= {name, m.description, m.reference, type(m).__name__}
    forbidden |= {n.rsplit(".", 1)[0] for n in store.case_names(study)}
    pattern = re.compile("|".join(rf"\b{re.escape(w)}\b" for w in forbidden), re.I)
    with httpx.Client() as client:
        pages = crawl(client, start)
        # answering and the refused answer render more pages: crawl those too
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"',
                         client.get(start + "/case/1").text).group(1)
        client.post(start + "/case/1", data={"csrf": csrf, "choice": "B", "rank_A": "2"})
        bad = client.post(start + "/case/2", data={"csrf": csrf})
        assert bad.status_code == 400
        pages |= crawl(client, start + "/done")
        pages[start + "/case/2 (refused)"] = bad
    n = len(store.case_names(study))
    images = [u for u in pages if "/image/" in u]
    assert len(images) == n * (2 + len(study.methods))  # every source and option was reached
    assert any(u.endswith("/static/style.css") for u in pages)
    for url, resp in pages.items():
        assert resp.status_code in (200, 400), url
        headers = " ".join(f"{k}: {v}" for k, v in resp.headers.items())
        assert not pattern.search(headers), (url, pattern.search(headers))
        assert not pattern.search(url)
        if resp.headers["content-type"] == "image/png":
            assert png_chunk_types(resp.content) == {b"IHDR", b"IDAT", b"IEND"}, url
            assert "etag" not in resp.headers and "last-modified" not in resp.headers
        else:
            found = pattern.search(resp.text)
            assert found is None, (url, found and found.group(0))
    by_case: dict[str, set[int]] = {}
    for url in images:
        by_case.setdefault(url.rsplit("/image/", 1)[0], set()).add(len(pages[url].content))
    assert all(len(sizes) == 1 for sizes in by_case.values())  # one byte length per case
