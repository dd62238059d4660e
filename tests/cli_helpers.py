"""Running the command line in process and checking its one-line errors (shared by the CLI tests)."""

from __future__ import annotations

import re

from msgfusion.cli import main

#: ``msgfusion: error: ...`` or, for argument errors, ``msgfusion fuse: error: ...``
ERROR_LINE = re.compile(r"^msgfusion( [\w-]+)?: error: ")


def run(capsys, *argv) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """``msgfusion ARGV`` in this process: exit code, stdout, stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: object) -> str:
    """Exit code 2 and one error line holding every fragment, no traceback; returns the line."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and ERROR_LINE.match(lines[0]), err
    assert "Traceback" not in err
    for frag in fragments:
        assert str(frag) in lines[0], (frag, lines[0])
    return lines[0]
