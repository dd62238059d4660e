"""Writing output files safely: checked before work, written atomically, never clobbered.

Every file msgfusion writes (fused images, tables, reports) goes through :func:`atomic_write`:

- the content is written to a temporary file in the target's folder, created with mode 0666
  filtered by the process umask (as any tool's outputs are; not ``mkstemp``'s 0600);
- without ``overwrite`` the temporary file is *hard-linked* to the target, which fails if the
  target exists, so of two processes writing one path at once exactly one wins and the other gets
  :class:`OutputExistsError` (on file systems without hard links, a check-then-rename is used);
  with ``overwrite`` it is renamed over the target;
- any failure (folder is a file, permission denied, read-only or full file system) raises
  :class:`OutputWriteError` naming the path, and the temporary file is removed: nothing
  half-written is left behind.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from msgfusion.errors import OutputExistsError, OutputWriteError

#: errno values meaning "this file system cannot make hard links".
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check before any work that ``path`` can be written: not a folder, not an existing file
    (unless ``overwrite``), and its nearest existing ancestor is a writable folder."""
    path = Path(path)
    try:
        is_dir, exists = path.is_dir(), path.exists()
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
    except OSError as exc:  # e.g. a folder on the way that may not be searched
        raise OutputWriteError(f"{path}: cannot write ({_reason(exc)})") from None
    if is_dir:
        raise OutputWriteError(f"{path}: is a folder, not a file")
    if exists and not overwrite:
        raise OutputExistsError(f"{path}: already exists")
    if ancestor.exists() and not ancestor.is_dir():
        raise OutputWriteError(f"{path}: cannot write, {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(ancestor).f_flag & os.ST_RDONLY)
        why = "a read-only file system" if read_only else "permission denied"
        raise OutputWriteError(f"{path}: cannot write, {why} at {ancestor}")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None],
                 overwrite: bool = False) -> Path:
    """Create ``path`` with what ``write(file)`` writes, atomically; see the module doc."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot create its folder ({_reason(exc)})") from None
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    except OutputExistsError:
        raise
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write ({_reason(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _link_no_clobber(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{path}: already exists") from None
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if path.exists():
            raise OutputExistsError(f"{path}: already exists") from None
        os.rename(tmp, path)


def write_text(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """Write a UTF-8 text file atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), overwrite)


#: First characters that make a spreadsheet read a text cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(cell: object) -> object:
    """A CSV cell that a spreadsheet will show, never evaluate (OWASP's rule): text starting with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``. Numbers, and text
    that is a plain number (``-0.5``), are left as they are."""
    if not isinstance(cell, str) or not cell.startswith(FORMULA_STARTS) or _NUMBER.fullmatch(cell):
        return cell
    return "'" + cell


def csv_text(rows: Iterable[Sequence[object]], lineterminator: str = "\n") -> str:
    """Rows as CSV text, every cell :func:`spreadsheet_safe`: the form of every CSV file
    msgfusion writes for people to open (tables, results, answers)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator=lineterminator).writerows(
        [spreadsheet_safe(c) for c in row] for row in rows)
    return buf.getvalue()
