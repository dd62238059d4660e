"""Reader studies: creation (every case's fused images precomputed), raters, answers, in SQLite.

One data folder holds one SQLite database (``studies.sqlite``, WAL mode) for all its studies and
one image folder per study (``studies/<name>/``). The server and every ``msgfusion study``
command open the same folder, so a study made on the command line is the one the server shows.

Blinding starts here: every image a rater can see (the two sources and each method's fused image)
is written once, at creation, as an 8-bit RGB PNG without metadata and *without compression*, so
all options of a case have the same format, size and byte length and nothing in the file says
which method made it. Each rater gets the cases in an order of their own and, per case, the
methods in an order of their own (labelled A, B, C...); both are drawn at invitation and stored,
so a rater who comes back sees exactly what they saw before.

Each answer is one transaction: an upsert on ``UNIQUE(rater, case)`` (a change updates the row,
never adds one) plus a line in ``answer_log``; the database is in WAL mode with
``synchronous=FULL``, so an answer acknowledged to the browser survives a killed server.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from msgfusion.errors import StudyClosedError, StudyError
from msgfusion.io.color import DEFAULT_COLOR_MODE, to_uint8

DB_NAME = "studies.sqlite"
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 random bits per rater or admin link
COMMENT_MAX = 2000
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    pairs_dir TEXT NOT NULL, modality TEXT NOT NULL, methods TEXT NOT NULL, color TEXT NOT NULL,
    seed INTEGER NOT NULL, admin_token TEXT NOT NULL UNIQUE, closed_at TEXT);
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id),
    idx INTEGER NOT NULL, pair_name TEXT NOT NULL, UNIQUE (study_id, idx));
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id),
    number INTEGER NOT NULL, token TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    UNIQUE (study_id, number));
CREATE TABLE IF NOT EXISTS assignments (
    rater_id INTEGER NOT NULL REFERENCES raters(id), case_id INTEGER NOT NULL REFERENCES cases(id),
    position INTEGER NOT NULL, option_order TEXT NOT NULL,
    PRIMARY KEY (rater_id, case_id), UNIQUE (rater_id, position));
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY, rater_id INTEGER NOT NULL REFERENCES raters(id),
    case_id INTEGER NOT NULL REFERENCES cases(id), choice TEXT NOT NULL,
    choice_label TEXT NOT NULL, ranking TEXT NOT NULL, comment TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, revisions INTEGER NOT NULL DEFAULT 1,
    UNIQUE (rater_id, case_id));
CREATE TABLE IF NOT EXISTS answer_log (
    id INTEGER PRIMARY KEY, rater_id INTEGER NOT NULL, case_id INTEGER NOT NULL,
    choice TEXT NOT NULL, ranking TEXT NOT NULL, comment TEXT NOT NULL, at TEXT NOT NULL);
"""


def now() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_name(name: str) -> str:
    """A study name is also a folder name: letters, digits, ``-`` and ``_`` only."""
    if not _NAME_RE.match(name):
        raise StudyError(f"study name {name!r}: use 1-64 letters, digits, '-' or '_' "
                         "(starting with a letter or digit)")
    return name


def encode_uniform_png(image: np.ndarray) -> bytes:
    """An image in [0, 1] as the one blinded file format: 8-bit RGB PNG, stored uncompressed
    (zlib level 0), no metadata chunks. Its byte length depends only on the image size."""
    rgb = to_uint8(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


@dataclass(frozen=True)
class Study:
    id: int
    name: str
    created_at: str
    pairs_dir: str
    modality: str
    methods: tuple[str, ...]
    color: str
    seed: int
    admin_token: str
    folder: Path
    closed_at: str | None = None  # when the study was closed (no answers taken), or None

    def option_path(self, case_idx: int, method_index: int) -> Path:
        return self.folder / f"case-{case_idx:03d}" / f"option-{method_index}.png"

    def source_path(self, case_idx: int, which: str) -> Path:
        return self.folder / f"case-{case_idx:03d}" / f"{which}.png"


@dataclass(frozen=True)
class Rater:
    id: int
    number: int
    token: str
    study: Study


@dataclass(frozen=True)
class Option:
    label: str
    method: str
    path: Path


@dataclass(frozen=True)
class CaseView:
    """What one rater sees at one position of their sequence (and their answer, if any)."""

    position: int  # 1-based
    total: int
    case_id: int
    case_idx: int
    options: tuple[Option, ...]
    choice_label: str | None
    ranking_labels: tuple[str, ...]
    comment: str

    def option(self, label: str) -> Option:
        for o in self.options:
            if o.label == label:
                return o
        raise StudyError(f"case {self.position}: no option {label!r}")


class StudyStore:
    """The studies of one data folder."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / DB_NAME
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            columns = {r["name"] for r in conn.execute("PRAGMA table_info(studies)")}
            if "closed_at" not in columns:  # a data folder made before studies could close
                try:
                    conn.execute("ALTER TABLE studies ADD COLUMN closed_at TEXT")
                except sqlite3.OperationalError as exc:  # another process added it just now
                    if "duplicate column" not in str(exc):
                        raise

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection whose ``with conn:`` blocks are transactions; closed afterwards."""
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error)."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def secret(self) -> bytes:
        """A random key kept in the database (for the forms' CSRF tokens), made on first use."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='secret'").fetchone()
            if row is None:
                value = secrets.token_hex(32)
                conn.execute("INSERT INTO meta(key, value) VALUES ('secret', ?)", (value,))
                return bytes.fromhex(value)
            return bytes.fromhex(row["value"])

    # -- studies ---------------------------------------------------------------------------------

    def _study(self, row: sqlite3.Row) -> Study:
        return Study(id=row["id"], name=row["name"], created_at=row["created_at"],
                     pairs_dir=row["pairs_dir"], modality=row["modality"],
                     methods=tuple(json.loads(row["methods"])), color=row["color"],
                     seed=row["seed"], admin_token=row["admin_token"],
                     folder=self.data_dir / "studies" / row["name"], closed_at=row["closed_at"])

    def get_study(self, name: str) -> Study:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM studies WHERE name=?", (name,)).fetchone()
        if row is None:
            raise StudyError(f"no study named {name!r} in {self.data_dir} "
                             "(create it with `msgfusion study create`)")
        return self._study(row)

    def study_for_admin(self, token: str) -> Study | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM studies WHERE admin_token=?", (token,)).fetchone()
        return None if row is None else self._study(row)

    def list_studies(self) -> list[Study]:
        with self.connect() as conn:
            return [self._study(r) for r in conn.execute("SELECT * FROM studies ORDER BY id")]

    def create_study(self, name: str, pairs_dir: str | os.PathLike, methods: Sequence[str],
                     cases: int | None = None, seed: int = 0, color: str = DEFAULT_COLOR_MODE,
                     progress: Callable[[str], None] | None = None) -> Study:
        """Draw ``cases`` pairs (all when None) from a folder of pairs with ``seed``, fuse each
        with every method through the shared API and colour path, and store the study.

        Nothing is stored unless every image was made: the images are written to a temporary
        folder that is renamed into place inside the transaction that records the study.
        """
        from msgfusion import check_method, fuse_many
        from msgfusion.data.datasets import PairFolder
        from msgfusion.io.color import COLOR_MODES

        check_name(name)
        methods = list(dict.fromkeys(methods))
        if len(methods) < 2:
            raise StudyError("a study compares at least two methods (--methods m1 m2 ...)")
        if len(methods) > len(LABELS):
            raise StudyError(f"a study compares at most {len(LABELS)} methods")
        for m in methods:
            check_method(m)  # UnknownMethodError names the method and lists the others
        if color not in COLOR_MODES:
            raise StudyError(f"unknown colour {color!r}; choose one of {', '.join(COLOR_MODES)}")
        folder = PairFolder(pairs_dir)
        n = len(folder) if cases is None else cases
        if not 1 <= n <= len(folder):
            raise StudyError(f"--cases {n}: {folder.root} holds {len(folder)} pairs")
        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM studies WHERE name=?", (name,)).fetchone():
                raise StudyError(f"a study named {name!r} already exists in {self.data_dir}")
        final = self.data_dir / "studies" / name
        if final.exists():
            raise StudyError(f"{final}: exists but belongs to no study; remove it first")
        final.parent.mkdir(parents=True, exist_ok=True)
        chosen = random.Random(seed).sample(range(len(folder)), n)
        pairs = [folder[i] for i in chosen]
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=final.parent))
        try:
            for idx, pair in enumerate(pairs):
                case_dir = tmp / f"case-{idx:03d}"
                case_dir.mkdir()
                (case_dir / "mr.png").write_bytes(encode_uniform_png(pair.mr))
                (case_dir / "func.png").write_bytes(encode_uniform_png(pair.func))
            for k, method in enumerate(methods):
                if progress:
                    progress(f"fusing {n} {folder.modality}-MRI pairs with {method}")
                for idx, fused in enumerate(fuse_many(pairs, method, color)):
                    png = encode_uniform_png(fused)
                    (tmp / f"case-{idx:03d}" / f"option-{k}.png").write_bytes(png)
            with self.transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO studies(name, created_at, pairs_dir, modality, methods, color, "
                    "seed, admin_token) VALUES (?,?,?,?,?,?,?,?)",
                    (name, now(), str(folder.root.resolve()), folder.modality, json.dumps(methods),
                     color, seed, secrets.token_urlsafe(TOKEN_BYTES)))
                conn.executemany(
                    "INSERT INTO cases(study_id, idx, pair_name) VALUES (?,?,?)",
                    [(cur.lastrowid, idx, folder.files[i].name) for idx, i in enumerate(chosen)])
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get_study(name)

    def set_closed(self, study: Study, closed: bool) -> Study:
        """Close a study (from now on no answer is taken or changed; the time is recorded) or
        reopen it (answers are taken again; the close time is cleared)."""
        with self.transaction() as conn:
            was = conn.execute("SELECT closed_at FROM studies WHERE id=?",
                               (study.id,)).fetchone()["closed_at"]
            if closed and was:
                raise StudyError(f"study {study.name!r} is already closed (since {was})")
            if not closed and not was:
                raise StudyError(f"study {study.name!r} is open")
            conn.execute("UPDATE studies SET closed_at=? WHERE id=?",
                         (now() if closed else None, study.id))
        return self.get_study(study.name)

    def version(self, study: Study) -> tuple:
        """What the study's results depend on: the last answer submitted, the number of raters
        and the close time. Equal versions give equal results (a cache key)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT (SELECT COALESCE(MAX(l.id), 0) FROM answer_log l JOIN raters r "
                "ON r.id = l.rater_id WHERE r.study_id=s.id) AS last_answer, "
                "(SELECT COUNT(*) FROM raters WHERE study_id=s.id) AS raters, s.closed_at "
                "FROM studies s WHERE s.id=?", (study.id,)).fetchone()
        return study.id, row["last_answer"], row["raters"], row["closed_at"]

    def case_names(self, study: Study) -> list[str]:
        """The pair (file) name of each case, by case index."""
        with self.connect() as conn:
            rows = conn.execute("SELECT pair_name FROM cases WHERE study_id=? ORDER BY idx",
                                (study.id,)).fetchall()
        return [r["pair_name"] for r in rows]

    # -- raters ----------------------------------------------------------------------------------

    def add_raters(self, study: Study, count: int) -> list[Rater]:
        """Invite ``count`` more raters, each with an unguessable token and their own order of
        cases and, per case, of methods (drawn with the system's random generator, stored)."""
        if count < 1:
            raise StudyError("--raters must be at least 1")
        rng = random.SystemRandom()
        created = []
        with self.transaction() as conn:
            case_ids = [r["id"] for r in conn.execute(
                "SELECT id FROM cases WHERE study_id=? ORDER BY idx", (study.id,))]
            start = conn.execute("SELECT COALESCE(MAX(number), 0) FROM raters WHERE study_id=?",
                                 (study.id,)).fetchone()[0]
            for number in range(start + 1, start + 1 + count):
                token = secrets.token_urlsafe(TOKEN_BYTES)
                cur = conn.execute(
                    "INSERT INTO raters(study_id, number, token, created_at) VALUES (?,?,?,?)",
                    (study.id, number, token, now()))
                order = rng.sample(case_ids, len(case_ids))
                conn.executemany(
                    "INSERT INTO assignments(rater_id, case_id, position, option_order) "
                    "VALUES (?,?,?,?)",
                    [(cur.lastrowid, cid, pos, json.dumps(rng.sample(range(len(study.methods)),
                                                                     len(study.methods))))
                     for pos, cid in enumerate(order, start=1)])
                created.append(Rater(cur.lastrowid, number, token, study))
        return created

    def raters(self, study: Study) -> list[Rater]:
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM raters WHERE study_id=? ORDER BY number",
                                (study.id,)).fetchall()
        return [Rater(r["id"], r["number"], r["token"], study) for r in rows]

    def rater(self, token: str) -> Rater | None:
        """The rater of a link token, or None."""
        with self.connect() as conn:
            row = conn.execute("SELECT s.*, r.id AS rater_id, r.number AS rater_number FROM raters r "
                               "JOIN studies s ON s.id = r.study_id WHERE r.token=?",
                               (token,)).fetchone()
        if row is None:
            return None
        return Rater(row["rater_id"], row["rater_number"], token, self._study(row))

    # -- the rater's cases and answers ------------------------------------------------------------

    def sequence(self, rater: Rater) -> list[CaseView]:
        """Every case of the rater, in their order, with their answers."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT a.position, a.case_id, a.option_order, c.idx, w.choice_label, w.ranking, "
                "w.comment FROM assignments a JOIN cases c ON c.id = a.case_id "
                "LEFT JOIN answers w ON w.rater_id = a.rater_id AND w.case_id = a.case_id "
                "WHERE a.rater_id=? ORDER BY a.position", (rater.id,)).fetchall()
        study = rater.study
        views = []
        for r in rows:
            order = json.loads(r["option_order"])
            options = tuple(Option(LABELS[i], study.methods[k], study.option_path(r["idx"], k))
                            for i, k in enumerate(order))
            by_method = {o.method: o.label for o in options}
            ranking = tuple(by_method[m] for m in json.loads(r["ranking"])) if r["ranking"] else ()
            views.append(CaseView(position=r["position"], total=len(rows), case_id=r["case_id"],
                                  case_idx=r["idx"], options=options,
                                  choice_label=r["choice_label"], ranking_labels=ranking,
                                  comment=r["comment"] or ""))
        return views

    def case_view(self, rater: Rater, position: int) -> CaseView:
        seq = self.sequence(rater)
        if not 1 <= position <= len(seq):
            raise StudyError(f"there is no case {position}; this study has {len(seq)}")
        return seq[position - 1]

    def save_answer(self, rater: Rater, position: int, choice_label: str,
                    ranking_labels: Sequence[str] = (), comment: str = "") -> CaseView:
        """Record (or change) the rater's answer for the case at ``position``, in one transaction.

        ``ranking_labels`` is an optional order of options from most to least useful; when
        given it must start with the chosen option and name each option at most once.
        """
        view = self.case_view(rater, position)
        labels = [o.label for o in view.options]
        if choice_label not in labels:
            raise StudyError(f"choose one of {', '.join(labels)}")
        ranking = list(ranking_labels)
        if ranking:
            if any(lab not in labels for lab in ranking) or len(set(ranking)) != len(ranking):
                raise StudyError("the ranking must name each option at most once")
            if ranking[0] != choice_label:
                raise StudyError(f"the ranking must put your choice {choice_label} first")
        if len(comment) > COMMENT_MAX:
            raise StudyError(f"the comment is longer than {COMMENT_MAX} characters")
        choice = view.option(choice_label).method
        ranked = json.dumps([view.option(lab).method for lab in ranking])
        t = now()
        with self.transaction() as conn:
            closed = conn.execute("SELECT closed_at FROM studies WHERE id=?",
                                  (rater.study.id,)).fetchone()["closed_at"]
            if closed:  # checked inside the transaction: no answer slips in after the close
                raise StudyClosedError(f"this study is closed (since {closed}); answers can no "
                                       "longer be given or changed")
            conn.execute(
                "INSERT INTO answers(rater_id, case_id, choice, choice_label, ranking, comment, "
                "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT(rater_id, case_id) DO UPDATE SET choice=excluded.choice, "
                "choice_label=excluded.choice_label, ranking=excluded.ranking, "
                "comment=excluded.comment, updated_at=excluded.updated_at, "
                "revisions=answers.revisions + 1",
                (rater.id, view.case_id, choice, choice_label, ranked, comment, t, t))
            conn.execute("INSERT INTO answer_log(rater_id, case_id, choice, ranking, comment, at) "
                         "VALUES (?,?,?,?,?,?)", (rater.id, view.case_id, choice, ranked, comment, t))
        return self.case_view(rater, position)

    # -- results ---------------------------------------------------------------------------------

    def answers(self, study: Study) -> list[dict]:
        """Every answer of the study, one dict per (rater, case), for statistics and CSV."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT r.number AS rater, c.idx AS case_idx, c.pair_name, a.position, "
                "a.option_order, w.choice, w.choice_label, w.ranking, w.comment, w.created_at, "
                "w.updated_at, w.revisions FROM answers w "
                "JOIN raters r ON r.id = w.rater_id JOIN cases c ON c.id = w.case_id "
                "JOIN assignments a ON a.rater_id = w.rater_id AND a.case_id = w.case_id "
                "WHERE r.study_id=? ORDER BY r.number, a.position", (study.id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["case"] = d["case_idx"] + 1  # the number the results give the case
            d["shown"] = " ".join(f"{LABELS[i]}={study.methods[k]}"
                                  for i, k in enumerate(json.loads(d.pop("option_order"))))
            d["ranking"] = " > ".join(json.loads(d["ranking"]))
            out.append(d)
        return out

    def completion(self, study: Study) -> list[dict]:
        """Per rater: answered cases, total, first and last answer times."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT r.number AS rater, COUNT(w.id) AS answered, "
                "(SELECT COUNT(*) FROM cases WHERE study_id=r.study_id) AS total, "
                "MIN(w.created_at) AS first_answer, MAX(w.updated_at) AS last_answer "
                "FROM raters r LEFT JOIN answers w ON w.rater_id = r.id "
                "WHERE r.study_id=? GROUP BY r.id ORDER BY r.number", (study.id,)).fetchall()
        return [dict(r) for r in rows]

    def log_count(self, study: Study) -> int:
        """How many answer submissions (first answers and changes) were recorded."""
        with self.connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM answer_log l JOIN raters r ON r.id = "
                                "l.rater_id WHERE r.study_id=?", (study.id,)).fetchone()[0]
