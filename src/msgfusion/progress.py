"""Progress bars (tqdm) for long work, one switch for all of them.

Bars are shown only on a terminal (tqdm's ``disable=None``) and never after
:func:`set_progress(False) <set_progress>` (the CLI's global ``-q/--quiet``).
"""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

_enabled = True


def set_progress(enabled: bool) -> None:
    """Show (on a terminal) or hide every later progress bar."""
    global _enabled
    _enabled = enabled


def progress_bar(enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar, shown when ``enabled``, progress is on, and stderr is a terminal."""
    return tqdm(disable=None if (enabled and _enabled) else True, **kwargs)
