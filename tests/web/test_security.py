"""The guards' building blocks: type sniffing, upload names, form tokens."""

from __future__ import annotations

import pytest

from msgfusion.errors import ImageReadError
from msgfusion.web.security import check_form_token, form_token, safe_filename, sniff_image


@pytest.mark.parametrize("head, suffix", [(b"\x89PNG\r\n\x1a\n....", ".png"),
                                          (b"\xff\xd8\xff\xe0JFIF", ".jpg"),
                                          (b"II*\x00....", ".tif"), (b"MM\x00*....", ".tif")])
def test_sniff_by_content(head, suffix):
    assert sniff_image(head, "x") == suffix


@pytest.mark.parametrize("data, message", [(b"", "empty"), (b"GIF89a...", "not a PNG"),
                                           (b"<svg onload=alert(1)>", "not a PNG"),
                                           (b"BM....", "not a PNG")])
def test_sniff_refuses_everything_else(data, message):
    with pytest.raises(ImageReadError, match=f"^upload a.png: .*{message}"):
        sniff_image(data, "upload a.png")


@pytest.mark.parametrize("name, safe", [("../../etc/passwd", "passwd"),
                                        ("..\\..\\boot.ini", "boot.ini"),
                                        ("...hidden.png", "hidden.png"), ("", "upload"),
                                        ("brain scan (1).png", "brain_scan__1_.png"),
                                        ("/", "upload"), ("a" * 200 + ".png", "a" * 80)])
def test_safe_filename(name, safe):
    assert safe_filename(name) == safe


def test_form_tokens_are_bound_to_the_link_and_the_key():
    token = form_token(b"k" * 32, "rater:abc")
    assert check_form_token(b"k" * 32, "rater:abc", token)
    assert not check_form_token(b"k" * 32, "rater:abd", token)
    assert not check_form_token(b"j" * 32, "rater:abc", token)
    assert not check_form_token(b"k" * 32, "rater:abc", None)
