"""The web page and the blinded reader study (``msgfusion serve``, ``msgfusion study``).

- :mod:`msgfusion.web.study`: the studies' storage (SQLite in WAL mode, one file per data folder)
  and the precomputation of every case's fused images through the shared Python API.
- :mod:`msgfusion.web.stats`: the study's statistics (choice counts, preference shares with
  bootstrap intervals, Bradley-Terry strengths, Friedman + Wilcoxon/Holm, Fleiss' kappa).
- :mod:`msgfusion.web.app`: the FastAPI application (:func:`~msgfusion.web.app.create_app`):
  the fusion page, the rater pages and the admin page.

Everything here is a client of the public API (:mod:`msgfusion`: ``make_pair``, ``fuse``,
``fuse_many``, ``evaluate``, ``check_method``, ``list_methods``); it never reaches into
:mod:`msgfusion.methods`, so there is no second fusion path (``tests/test_house.py`` checks).
"""

from __future__ import annotations

import os
from pathlib import Path


#: The fusion page's default pixel limit per uploaded image (``serve --max-pixels``): 2048 x 2048,
#: 64 atlas slices of 256 x 256.
WEB_MAX_PIXELS = 2048 * 2048


def default_data_dir() -> Path:
    """The per-user data folder shared by ``msgfusion serve`` and every ``msgfusion study``
    command: ``$XDG_DATA_HOME/msgfusion`` (default ``~/.local/share/msgfusion``)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "msgfusion"
