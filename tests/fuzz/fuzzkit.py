"""Corrupted and unusual inputs generated from real atlas pairs, and the oracle that judges how
the real command line handled each one.

Used by the fuzz tests (a fast subset in the normal run, the whole campaign under ``-m slow``)
and by ``benchmarks/reliability.py``, which writes ``docs/reliability.md``.

Every :class:`Case` is a ``msgfusion`` command line over files in a work folder. The oracle
(:func:`judge`) accepts exactly two outcomes:

- exit 0, and the output exists, is readable, finite, in [0, 1] and of the pair's size;
- exit 2 with exactly one stderr line ``msgfusion: error: ...`` naming the culprit file;

(besides lines ``msgfusion: warning: ...``, which say what was assumed about an input)

and classifies anything else: ``crash`` (a traceback or another exit code), ``hang`` (timeout),
``partial`` (a temporary or half-written file left behind, or an output on failure),
``clobber`` (a file that existed changed), ``garbage`` (exit 0 on an input whose corruption a
checksum or a value check can detect). Exit 0 on a corruption no checksum covers (a flipped bit
in JPEG, BMP or uncompressed TIFF pixel data) is ``undetectable``: reported, not a failure.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

import msgfusion

REPO = Path(__file__).resolve().parents[2]
#: the source tree of the msgfusion under test (subprocesses run the same code)
SRC = Path(msgfusion.__file__).resolve().parents[1]
AANLIB = REPO.parent / "shared" / "data" / "aanlib"
SOURCE_PAIR = ("PET-MRI", "PET", "25015")  # the real pair every case is generated from
TIMEOUT_S = 60

#: Lines that tell the user what msgfusion assumed (colour image given as MR, unknown colour
#: scale); allowed besides the one error line or a success.
WARNING = "msgfusion: warning:"

#: Outcomes that are a failure of msgfusion.
BAD = ("crash", "hang", "partial", "clobber", "garbage")


@dataclass
class Case:
    """One command line over generated files.

    ``detectable``: a checksum or value check can tell the input is bad, so exit 0 is garbage.
    ``culprit``: the file an error line must name. ``output``: the file (or folder) a success
    writes. ``protected``: files that must not change. ``subprocess``: run as
    ``python -m msgfusion`` (real process: FIFOs, concurrency, resource limits) rather than
    ``main()`` in-process. ``limits``: resource limits for the subprocess.
    """

    category: str
    name: str
    argv: list[str]
    culprit: str = ""
    output: Path | None = None
    detectable: bool = False
    protected: list[Path] = field(default_factory=list)
    subprocess: bool = False
    limits: dict[int, int] = field(default_factory=dict)
    parallel: int = 1  # run this many copies at once (subprocess only)
    prefix: list[str] = field(default_factory=list)  # command prefix (subprocess only)
    teardown: Callable[[], object] | None = None  # undo what the case set up


@dataclass
class Outcome:
    case: Case
    verdict: str  # ok, error, undetectable, or one of BAD
    detail: str = ""


# ---------------------------------------------------------------- corrupting files


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header (with valid CRCs) claims ``width x height`` grey pixels; the data
    holds four rows, so decoding it would first allocate the whole claimed image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (min(width, 1 << 16) + 1) * 4)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


# ---------------------------------------------------------------- generating cases


def _works(command: list[str]) -> bool:
    """Whether a system command runs successfully here (chattr, unshare need privileges)."""
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class Workspace:
    """A work folder holding the real source pair and the generated files."""

    def __init__(self, root: Path, pair: tuple[str, str, str] = SOURCE_PAIR) -> None:
        self.root = root
        folder, self.modality, stem = pair
        self.mr = AANLIB / folder / "test" / "MRI" / f"{stem}.png"
        self.func = AANLIB / folder / "test" / self.modality / f"{stem}.png"
        self.mr_img = Image.open(self.mr)
        self.func_img = Image.open(self.func).convert("RGB" if self.modality != "CT" else "L")
        root.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def path(self, name: str) -> Path:
        self._n += 1
        return self.root / f"{self._n:03d}_{name}"

    def write(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return p

    def out(self, ext: str = ".png") -> Path:
        return self.path(f"out{ext}")

    def fuse(self, category: str, name: str, mr: Path | None = None, func: Path | None = None,
             culprit: Path | None = None, method: str = "average", detectable: bool = False,
             **kw: object) -> Case:
        out = kw.pop("output", None) or self.out()
        argv = ["fuse", "--mr", str(mr or self.mr), "--func", str(func or self.func),
                "--method", method, "-o", str(out), *kw.pop("extra", [])]
        return Case(category, name, argv, str(culprit or ""), out, detectable, **kw)


def corrupt_file_cases(ws: Workspace, rng: random.Random, n_flips: int) -> Iterator[Case]:
    """Truncations and bit flips of the functional image in each format."""
    formats = {"png": ("PNG", {}, True), "jpg": ("JPEG", {"quality": 95}, False),
               "bmp": ("BMP", {}, False), "tif": ("TIFF", {}, False),
               "lzw.tif": ("TIFF", {"compression": "tiff_lzw"}, False)}
    for ext, (fmt, kw, checksummed) in formats.items():
        data = encode(ws.func_img, fmt, **kw)
        for frac in (0.0, 0.01, 0.3, 0.7, 0.99):
            cut = max(0, int(len(data) * frac) - (1 if frac == 0.99 else 0))
            p = ws.write(f"trunc{int(frac * 100)}.{ext}", data[:cut])
            # a truncation always loses data; PNG checks it, the others may decode partly
            yield ws.fuse("truncation", f"{ext} cut at {frac:.0%}", func=p, culprit=p,
                          detectable=checksummed or frac < 0.02)
        for _ in range(n_flips):
            bit = rng.randrange(len(data) * 8)
            p = ws.write(f"flip{bit}.{ext}", flip_bit(data, bit))
            yield ws.fuse("bit flip", f"{ext} bit {bit}", func=p, culprit=p, detectable=checksummed)


def libtiff_cases(ws: Workspace, rng: random.Random, n: int) -> Iterator[Case]:
    """LZW-compressed TIFFs with 20 bytes of the strip data inverted: libtiff prints its own
    messages on stderr ("Using code not yet in table"), which must not leak."""
    data = encode(ws.func_img, "TIFF", compression="tiff_lzw")
    for k in range(n):
        damaged = bytearray(data)
        for _ in range(20):
            damaged[rng.randrange(8, len(data) - 400)] ^= 0xFF
        p = ws.write(f"lzw_damaged{k}.tif", bytes(damaged))
        yield ws.fuse("libtiff message", f"LZW TIFF, 20 bytes inverted #{k}", func=p, culprit=p)


def bomb_cases(ws: Workspace) -> Iterator[Case]:
    for w, h in ((100_000, 100_000), (20_000, 20_000), (10_000, 10_000), (70_000, 1)):
        p = ws.write(f"bomb{w}x{h}.png", png_claiming(w, h))
        yield ws.fuse("bomb", f"PNG header {w}x{h}", mr=p, culprit=p, detectable=True)
    p = ws.write("zero.png", png_claiming(0, 5))
    yield ws.fuse("bomb", "PNG header 0x5", mr=p, culprit=p, detectable=True)


def float_tiff_cases(ws: Workspace) -> Iterator[Case]:
    base = np.asarray(ws.mr_img, dtype=np.float32) / 255.0
    for label, value in (("NaN", np.nan), ("+inf", np.inf), ("-inf", -np.inf)):
        for count in (1, 100):
            arr = base.copy()
            arr.flat[:: max(1, arr.size // count)] = value
            p = ws.write(f"float_{label}_{count}.tif", encode(Image.fromarray(arr, "F"), "TIFF"))
            yield ws.fuse("float TIFF", f"{count} x {label}", mr=p, culprit=p, detectable=True)
    p = ws.write("float_ok.tif", encode(Image.fromarray(base * 1000.0, "F"), "TIFF"))
    yield ws.fuse("float TIFF", "finite, 0..1000", mr=p)
    two = ws.path("two_pages.tif")
    ws.mr_img.save(two, save_all=True, append_images=[ws.mr_img])
    yield ws.fuse("float TIFF", "two pages", mr=two, culprit=two, detectable=True)


def special_file_cases(ws: Workspace) -> Iterator[Case]:
    fifo = ws.path("fifo.png")
    os.mkfifo(fifo)
    yield ws.fuse("special file", "FIFO as --func", func=fifo, culprit=fifo, detectable=True,
                  subprocess=True)
    yield ws.fuse("special file", "FIFO as --mr (in-process)", mr=fifo, culprit=fifo,
                  detectable=True)
    yield ws.fuse("special file", "/dev/zero", mr=Path("/dev/zero"), culprit="/dev/zero",
                  detectable=True)
    yield ws.fuse("special file", "/dev/null", func=Path("/dev/null"), culprit="/dev/null",
                  detectable=True)
    folder = ws.path("folder.png")
    folder.mkdir()
    yield ws.fuse("special file", "a folder", mr=folder, culprit=folder, detectable=True)
    missing = ws.root / "missing.png"
    yield ws.fuse("special file", "missing file", func=missing, culprit=missing, detectable=True)
    empty = ws.write("empty.png", b"")
    yield ws.fuse("special file", "empty file", mr=empty, culprit=empty, detectable=True)
    text = ws.write("text.png", b"not an image\n" * 10)
    yield ws.fuse("special file", "text named .png", func=text, culprit=text, detectable=True)


def tiny_and_constant_cases(ws: Workspace) -> Iterator[Case]:
    rng = np.random.default_rng(0)
    methods = ("average", "msgfusion", "nestfuse", "fusiondn", "latlrr", "wpadcpcnn", "lp")
    for h, w in ((1, 1), (1, 7), (7, 1), (2, 2), (8, 8), (9, 9), (16, 3)):
        mr = ws.write(f"tiny{h}x{w}_mr.png", encode(Image.fromarray(
            rng.integers(0, 256, (h, w), dtype=np.uint8)), "PNG"))
        func = ws.write(f"tiny{h}x{w}_func.png", encode(Image.fromarray(
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), "PNG"))
        for method in methods:
            yield ws.fuse("tiny image", f"{h}x{w} {method}", mr=mr, func=func, culprit=mr,
                          method=method)
    for value in (0, 255):
        mr = ws.write(f"const{value}_mr.png", encode(Image.new("L", ws.mr_img.size, value), "PNG"))
        func = ws.write(f"const{value}_func.png",
                        encode(Image.new("RGB", ws.mr_img.size, (value,) * 3), "PNG"))
        for method in ("average", "msgfusion", "ifcnn", "gff"):
            yield ws.fuse("constant image", f"all {value} {method}", mr=mr, func=func,
                          culprit=mr, method=method)


def output_cases(ws: Workspace) -> Iterator[Case]:
    blocker = ws.write("a_file", b"x")
    yield ws.fuse("output", "parent is a file", output=blocker / "out.png", culprit=blocker,
                  protected=[blocker])
    existing = ws.write("exists.png", encode(ws.mr_img, "PNG"))
    yield ws.fuse("output", "exists, no --overwrite", output=existing, culprit=existing,
                  protected=[existing])
    folder = ws.path("out_folder.png")
    folder.mkdir()
    yield ws.fuse("output", "output is a folder", output=folder, culprit="is a folder")
    yield ws.fuse("output", "unknown extension", output=ws.out(".xyz"), culprit=".xyz")
    full = ws.out()
    yield ws.fuse("output", "file system full (RLIMIT_FSIZE)", output=full, culprit=str(full),
                  subprocess=True, limits={resource.RLIMIT_FSIZE: 4096})
    race = ws.out()
    yield ws.fuse("output", "4 concurrent writers, one -o", output=race, culprit=str(race),
                  subprocess=True, parallel=4)
    locked = ws.path("locked")
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o555)
        yield ws.fuse("output", "permission denied (folder mode 555)", output=locked / "out.png",
                      culprit=str(locked), teardown=lambda: locked.chmod(0o755))
    elif _works(["chattr", "+i", str(locked)]):  # root ignores modes, not the immutable flag
        yield ws.fuse("output", "permission denied (immutable folder)", output=locked / "out.png",
                      culprit=str(locked),
                      teardown=lambda: _works(["chattr", "-i", str(locked)]))
    ro = ws.path("read_only")
    ro.mkdir()
    remount = ["unshare", "-m", "sh", "-c", f'mount -o bind,ro "{ro}" "{ro}" && exec "$0" "$@"']
    if _works([*remount, "true"]):
        yield ws.fuse("output", "read-only file system (bind mount)", output=ro / "out.png",
                      culprit=str(ro), subprocess=True, prefix=remount)
    # the largest pair the default pixel limit admits (4096 x 4096 fits in 2 GiB since tiling)
    big = ws.write("big_mr.png", encode(ws.mr_img.resize((8192, 4096)), "PNG"))
    big_func = ws.write("big_func.png", encode(ws.func_img.resize((8192, 4096)), "PNG"))
    yield ws.fuse("output", "out of memory (RLIMIT_AS 2 GiB, 4096x8192 msgfusion)", mr=big,
                  func=big_func, method="msgfusion", culprit="memory", subprocess=True,
                  limits={resource.RLIMIT_AS: 2 << 30})


def batch_cases(ws: Workspace) -> Iterator[Case]:
    """fuse-dir and evaluate on a copy of a split with one corrupted pair."""
    src = AANLIB / "PET-MRI" / "test"
    names = sorted(p.name for p in (src / "MRI").iterdir())[:6]

    def copy_pairs() -> Path:
        pairs = ws.path("pairs")
        for sub in ("MRI", "PET"):
            (pairs / sub).mkdir(parents=True)
            for n in names:
                shutil.copy(src / sub / n, pairs / sub / n)
        return pairs

    pairs = copy_pairs()
    bad = pairs / "PET" / names[4]
    bad.write_bytes(flip_bit(bad.read_bytes(), 8 * 2000 + 3))
    out = ws.path("fused")
    yield Case("batch", "fuse-dir, pair 5 of 6 corrupt", ["fuse-dir", str(pairs), "-o", str(out),
               "--method", "average"], str(bad), out, detectable=True)
    out2 = ws.path("fused_kg")
    yield Case("batch", "fuse-dir --keep-going", ["fuse-dir", str(pairs), "-o", str(out2),
               "--method", "average", "--keep-going"], str(bad), out2, detectable=True)
    for size in ("0", "-1"):
        yield Case("batch", f"fuse-dir --batch-size {size}", ["fuse-dir", str(pairs), "-o",
                   str(ws.path("fused_bs")), "--batch-size", size], "--batch-size", None, True)
    nan = ws.path("fused_nan")
    nan.mkdir()
    for n in names:
        arr = np.full((256, 256), 0.5, dtype=np.float32)
        arr[0, 0] = np.nan
        Image.fromarray(arr, "F").save(nan / f"{Path(n).stem}.tif")
    yield Case("batch", "evaluate, fused float TIFF with NaN",
               ["evaluate", "--pairs", str(copy_pairs()), "--fused", str(nan)], str(nan), None,
               True)


def all_cases(root: Path, n_flips: int, seed: int = 0) -> list[Case]:
    """The campaign: every generator above, ``n_flips`` random bit flips per format."""
    ws = Workspace(root)
    rng = random.Random(seed)
    gens: list[Callable[[], Iterator[Case]]] = [
        lambda: corrupt_file_cases(ws, rng, n_flips), lambda: libtiff_cases(ws, rng, n_flips // 4),
        lambda: bomb_cases(ws),
        lambda: float_tiff_cases(ws), lambda: special_file_cases(ws),
        lambda: tiny_and_constant_cases(ws), lambda: output_cases(ws), lambda: batch_cases(ws)]
    return [case for gen in gens for case in gen()]


# ---------------------------------------------------------------- running and judging


class _Timeout(Exception):
    pass


def _capture_fds(run: Callable[[], int]) -> tuple[int | BaseException, str, str]:
    """Run in-process with file descriptors 1 and 2 captured (what C libraries print too)."""
    from tempfile import TemporaryFile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with TemporaryFile() as out, TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), write_through=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), write_through=True)
        try:
            result: int | BaseException = run()
        except BaseException as exc:  # noqa: BLE001 - the oracle classifies it
            result = exc
        finally:
            sys.stdout.close()
            sys.stderr.close()
            sys.stdout, sys.stderr = old_out, old_err
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        err.seek(0)
        return result, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def run_in_process(argv: list[str], timeout: int = TIMEOUT_S) -> tuple[int | str, str, str]:
    """``main(argv)`` in this process; returns (exit code, or 'hang' / 'crash: <type>', stdout,
    stderr). A hang is cut by SIGALRM (main thread only)."""
    from msgfusion.cli import main

    def alarm(signum: int, frame: object) -> None:
        raise _Timeout

    use_alarm = threading.current_thread() is threading.main_thread()
    if use_alarm:
        old = signal.signal(signal.SIGALRM, alarm)
        signal.alarm(timeout)
    try:
        result, out, err = _capture_fds(lambda: main(argv))
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    if isinstance(result, _Timeout):
        return "hang", out, err
    if isinstance(result, SystemExit):
        return int(result.code or 0), out, err
    if isinstance(result, BaseException):
        return f"crash: {type(result).__name__}: {result}", out, err
    return result, out, err


def _preexec(case: Case) -> Callable[[], None]:
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails with EFBIG
        for which, limit in case.limits.items():
            resource.setrlimit(which, (limit, limit))
    return setup


def run_subprocess(case: Case, timeout: int = TIMEOUT_S) -> list[tuple[int | str, str, str]]:
    """``python -m msgfusion`` for the case (``parallel`` copies at once)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [subprocess.Popen([*case.prefix, sys.executable, "-m", "msgfusion", *case.argv],
                              env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_preexec(case), cwd=REPO)
             for _ in range(case.parallel)]
    results: list[tuple[int | str, str, str]] = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
            results.append((p.returncode, out, err))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            results.append(("hang", out, err))
    return results


def _plausible(path: Path) -> str:
    """'' if ``path`` (a fused image, or a folder of them) is a readable, finite image in
    [0, 1]; else what is wrong."""
    from msgfusion.errors import MsgFusionError
    from msgfusion.io.images import read_image

    files = sorted(path.iterdir()) if path.is_dir() else [path]
    if not files:
        return f"{path}: no output"
    for f in files:
        try:
            img = read_image(f)
        except MsgFusionError as exc:
            return f"output unreadable: {exc}"
        if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
            return f"{f}: values outside [0, 1]"
    return ""


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part") or ".part" in p.suffixes]


def judge(case: Case, results: list[tuple[int | str, str, str]], before: dict[Path, str],
          output_existed: bool, root: Path) -> Outcome:
    """Classify what happened (see the module doc)."""
    for path, h in before.items():
        if digest(path) != h:
            return Outcome(case, "clobber", f"{path} changed")
    left = _leftovers(root)
    if left:
        return Outcome(case, "partial", f"left behind: {', '.join(map(str, left[:3]))}")
    codes = [r[0] for r in results]
    for code, _, err in results:
        if code == "hang":
            return Outcome(case, "hang", f"no exit within {TIMEOUT_S} s")
        if not isinstance(code, int):  # "crash: <exception>" from run_in_process
            return Outcome(case, "crash", code[:200])
        if code not in (0, 2) or "Traceback" in err:
            tail = (err.strip().splitlines() or [str(code)])[-1]
            return Outcome(case, "crash", f"exit {code}: {tail[:200]}")
    details = []
    for code, _, err in results:
        lines = [line for line in err.strip().splitlines() if not line.startswith(WARNING)]
        if code == 2:
            if len(lines) != 1 or "error" not in lines[0]:
                return Outcome(case, "crash", f"exit 2 with {len(lines)} stderr lines: "
                                              f"{' | '.join(lines)[:300]}")
            if case.culprit and case.culprit not in lines[0]:
                return Outcome(case, "crash", f"error line does not name {case.culprit}: "
                                              f"{lines[0][:300]}")
            details.append(lines[0])
        elif lines and case.category != "batch":
            return Outcome(case, "crash", f"exit 0 but stderr: {' | '.join(lines)[:300]}")
    if case.parallel > 1:
        wins = codes.count(0)
        if wins != 1:
            return Outcome(case, "clobber", f"{wins} of {case.parallel} writers reported success")
        wrong = _plausible(case.output) if case.output is not None else ""
        refused = sum("already exists" in d for d in details)
        return Outcome(case, "garbage" if wrong else "ok",
                       wrong or f"1 of {case.parallel} writers won, {refused} refused: "
                       "already exists")
    if 0 not in codes:
        out = case.output
        if out is not None and not output_existed and out.exists() and out.is_file():
            return Outcome(case, "partial", f"{out} written although the command failed")
        keep_going = "--keep-going" in case.argv
        if out is not None and out.is_dir() and any(out.iterdir()) and not keep_going:
            return Outcome(case, "partial", f"{out} holds outputs although the command failed")
        return Outcome(case, "error", details[0] if details else "")
    if case.output is not None:
        wrong = _plausible(case.output)
        if wrong:
            return Outcome(case, "garbage", wrong)
    if case.detectable:
        return Outcome(case, "garbage", "exit 0 on an input a check can reject")
    if case.category in ("bit flip", "truncation"):
        return Outcome(case, "undetectable", "exit 0: no checksum covers this change")
    return Outcome(case, "ok")


def run_case(case: Case, root: Path) -> Outcome:
    """Run one case and judge it."""
    before = {p: digest(p) for p in case.protected}
    existed = case.output is not None and case.output.exists()
    try:
        if case.subprocess:
            results = run_subprocess(case)
        else:
            results = [run_in_process(case.argv)]
    finally:
        if case.teardown is not None:
            case.teardown()
    return judge(case, results, before, existed, root)
