"""Study storage: creation through the shared API, blinded image files, answers as upserts."""

from __future__ import annotations

import io
import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from msgfusion.api import fuse_intensity
from msgfusion.data.datasets import PairFolder
from msgfusion.errors import StudyError, UnknownMethodError
from msgfusion.io.color import DEFAULT_COLOR_MODE, restore_color, to_uint8
from msgfusion.web.study import StudyStore, encode_uniform_png


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kinds.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return kinds


def test_uniform_png_is_metadata_free_and_size_only_depends_on_shape():
    rng = np.random.default_rng(0)
    a, b = encode_uniform_png(rng.random((64, 48, 3))), encode_uniform_png(np.zeros((64, 48)))
    assert len(a) == len(b)  # noise and a black grey image: same byte length
    assert set(png_chunks(a)) == {b"IHDR", b"IDAT", b"IEND"}
    assert Image.open(io.BytesIO(b)).mode == "RGB"


def test_create_fuses_with_the_shared_api_and_default_colour(tmp_path, pet_pairs, study_maker):
    store, study = study_maker(tmp_path, pet_pairs, cases=3)
    assert study.color == DEFAULT_COLOR_MODE and study.modality == "PET"
    folder = PairFolder(pet_pairs)
    names = store.case_names(study)
    assert len(names) == 3 and len(set(names)) == 3
    by_name = {f.name: i for i, f in enumerate(folder.files)}
    for idx, name in enumerate(names):
        pair = folder[by_name[name]]
        for k, method in enumerate(study.methods):
            (intensity,) = fuse_intensity([pair], method)
            expected = to_uint8(restore_color(intensity, pair.func, DEFAULT_COLOR_MODE))
            stored = np.asarray(Image.open(study.option_path(idx, k)))
            assert np.array_equal(stored, expected), (name, method)
        sizes = {p.stat().st_size for p in study.option_path(idx, 0).parent.iterdir()}
        assert len(sizes) == 1  # sources and every option: one byte length
    # same seed, same draw
    _, again = study_maker(tmp_path / "again", pet_pairs, cases=3)
    assert StudyStore(tmp_path / "again").case_names(again) == names


def test_create_errors_leave_nothing_behind(tmp_path, pet_pairs, study_maker):
    store = StudyStore(tmp_path)
    with pytest.raises(StudyError, match="letters, digits"):
        store.create_study("../evil", pet_pairs, ["average", "max"])
    with pytest.raises(UnknownMethodError, match="nosuch"):
        store.create_study("s", pet_pairs, ["average", "nosuch"])
    with pytest.raises(StudyError, match="at least two"):
        store.create_study("s", pet_pairs, ["average", "average"])
    with pytest.raises(StudyError, match="holds 24 pairs"):
        store.create_study("s", pet_pairs, ["average", "max"], cases=25)
    assert store.list_studies() == [] and not any((tmp_path / "studies").glob("*"))
    study_maker(tmp_path, pet_pairs, name="s", cases=1)
    with pytest.raises(StudyError, match="already exists"):
        store.create_study("s", pet_pairs, ["average", "max"], cases=1)


def test_answers_are_upserts_with_timestamps_and_a_log(tmp_path, pet_pairs, study_maker):
    store, study = study_maker(tmp_path, pet_pairs, cases=2)
    r1, r2 = store.add_raters(study, 2)
    assert len(r1.token) >= 43 and r1.token != r2.token  # 32 random bytes, base64url
    seq = store.sequence(r1)
    assert [v.position for v in seq] == [1, 2] and all(v.choice_label is None for v in seq)
    first = store.save_answer(r1, 1, "A", ["A", "C"], "sharp")
    assert first.choice_label == "A" and first.ranking_labels == ("A", "C")
    changed = store.save_answer(r1, 1, "B")
    assert changed.choice_label == "B" and changed.ranking_labels == () and changed.comment == ""
    rows = store.answers(study)
    assert len(rows) == 1 and rows[0]["revisions"] == 2
    assert rows[0]["choice"] == changed.option("B").method
    assert rows[0]["created_at"] <= rows[0]["updated_at"]
    assert store.log_count(study) == 2
    with pytest.raises(StudyError, match="choose one of A, B, C"):
        store.save_answer(r1, 2, "D")
    with pytest.raises(StudyError, match="put your choice A first"):
        store.save_answer(r1, 2, "A", ["B", "A"])
    with pytest.raises(StudyError, match="no case 3"):
        store.save_answer(r1, 3, "A")
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.IntegrityError):  # the schema itself forbids a duplicate
            conn.execute("INSERT INTO answers(rater_id, case_id, choice, choice_label, ranking, "
                         "comment, created_at, updated_at) SELECT rater_id, case_id, choice, "
                         "choice_label, ranking, comment, created_at, updated_at FROM answers")
    # orders are per rater and stored: a rater sees the same order again
    assert [o.method for o in store.sequence(r1)[0].options] == \
        [o.method for o in seq[0].options]
    orders = {json.dumps([o.method for v in store.sequence(r) for o in v.options])
              for r in store.add_raters(study, 12)}
    assert len(orders) > 1  # 12 raters do not all get the same orders
