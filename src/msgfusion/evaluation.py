"""Evaluating a folder of fused images against their source pairs (``msgfusion evaluate``).

The fused images are matched to the pairs of a folder of pairs (:class:`PairFolder`) by file
name without extension (``FUSED_DIR/16009.png`` <-> ``PAIRS_DIR/MRI/16009.png``), the same rule
that matches partners (:func:`msgfusion.data.datasets.index_by_stem`); a pair without
a fused image, a fused image without a pair, or two fused files for one pair is an error naming
the files. An image too small for a metric, or unreadable, is an error naming the file; tables
are written atomically (:mod:`msgfusion.io.files`). Each triple is evaluated as
:func:`msgfusion.metrics.evaluate_images` does (8-bit grey / luminance, 0..255). It lives a floor
above :mod:`msgfusion.metrics`, whose metrics are pure functions of arrays and read no file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msgfusion.data.datasets import PairFiles, PairFolder, index_by_stem, name_list
from msgfusion.errors import DatasetError, InvalidImageError, ShapeMismatchError
from msgfusion.io.files import check_output, csv_text, write_text
from msgfusion.io.images import read_image
from msgfusion.metrics.registry import METRICS, evaluate_images, resolve_names
from msgfusion.pair import load_pair

TABLE_FORMATS = {".csv": "csv", ".md": "markdown", ".markdown": "markdown"}
_TEXT_DIRECTION = {"higher": "higher", "lower": "lower", "zero": "->0"}
_MARKDOWN_DIRECTION = {"higher": "↑", "lower": "↓", "zero": "→0"}


@dataclass(frozen=True)
class FusedPair:
    """A pair of source files and the fused image made from it."""

    pair: PairFiles
    fused_path: Path


def match_fused(folder: PairFolder, fused_dir: str | os.PathLike) -> list[FusedPair]:
    """Match every pair of ``folder`` to its fused image in ``fused_dir`` by file stem.

    Raises :class:`DatasetError` naming the missing, extra or ambiguous files.
    """
    fused_dir = Path(fused_dir)
    if not fused_dir.is_dir():
        raise DatasetError(f"{fused_dir}: not a folder")
    by_stem = index_by_stem(fused_dir)
    stems = {f.stem for f in folder.files}
    problems = []
    missing = [f.name for f in folder.files if f.stem not in by_stem]
    if missing:
        problems.append(f"{len(missing)} pair(s) of {folder.root} have no fused image in "
                        f"{fused_dir}: {name_list(missing)}")
    extra = sorted(p.name for stem, p in by_stem.items() if stem not in stems)
    if extra:
        problems.append(f"{len(extra)} fused image(s) in {fused_dir} match no pair of "
                        f"{folder.root}: {name_list(extra)}")
    if problems:
        raise DatasetError("; ".join(problems))
    return [FusedPair(f, by_stem[f.stem]) for f in folder.files]


@dataclass(frozen=True)
class EvaluationTable:
    """Metric values per image: ``values[i, j]`` is metric ``labels[j]`` of image ``images[i]``."""

    images: tuple[str, ...]
    labels: tuple[str, ...]
    values: np.ndarray

    def mean(self) -> np.ndarray:
        """Mean of each metric over the images."""
        return self.values.mean(axis=0)

    def std(self) -> np.ndarray:
        """Sample standard deviation (n - 1) of each metric over the images (0 for one image)."""
        if len(self.images) < 2:
            return np.zeros(len(self.labels))
        return self.values.std(axis=0, ddof=1)

    def _cells(self, spec: str) -> tuple[list[list[str]], list[list[str]]]:
        """(per-image rows, [mean row, std row]) as text cells, numbers formatted with ``spec``."""
        def row(name: str, values: np.ndarray) -> list[str]:
            return [name, *(format(float(v), spec) for v in values)]

        body = [row(name, values) for name, values in zip(self.images, self.values, strict=True)]
        return body, [row("mean", self.mean()), row("std", self.std())]

    def to_csv(self) -> str:
        """One row per image: ``image`` (file stem), then one column per metric label."""
        return csv_text([["image", *self.labels], *self._cells("")[0]])  # shortest exact repr

    def to_markdown(self) -> str:
        """A Markdown table: one row per image, then mean and std; arrows mark the direction."""
        head = [f"{lab} {_MARKDOWN_DIRECTION[METRICS[lab].direction]}" for lab in self.labels]
        body, summary = self._cells(".4g")
        summary = [[f"**{r[0]}**", *r[1:]] for r in summary]
        lines = ["| " + " | ".join(["image", *head]) + " |", "|---|" + "---:|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body + summary]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """An aligned plain-text table: images, then mean and std; a row gives the direction."""
        header = ["image", *self.labels]
        better = ["(better)", *(_TEXT_DIRECTION[METRICS[lab].direction] for lab in self.labels)]
        body, summary = self._cells(".5g")
        widths = [max(map(len, col)) for col in zip(header, better, *body, *summary, strict=True)]

        def fmt(r: list[str]) -> str:
            cells = [c.rjust(w) for c, w in zip(r, widths, strict=True)]
            return "  ".join([r[0].ljust(widths[0]), *cells[1:]]).rstrip()

        rule = "  ".join("-" * w for w in widths)
        lines = [fmt(header), fmt(better), rule, *map(fmt, body), rule, *map(fmt, summary)]
        return "\n".join(lines) + "\n"

    def render(self, fmt: str) -> str:
        """The table as ``csv``, ``markdown`` or ``text``."""
        return {"csv": self.to_csv, "markdown": self.to_markdown, "text": self.to_text}[fmt]()


def evaluate_matched(matched: Sequence[FusedPair], names: str | Iterable[str] | None = None,
                     progress: Callable[[int], object] | None = None) -> EvaluationTable:
    """Evaluate matched (pair, fused image) files; ``progress(1)`` is called after each image."""
    labels = resolve_names(names)
    rows = []
    for item in matched:
        files = item.pair
        pair = load_pair(files.mr_path, files.func_path, modality=files.modality, name=files.stem)
        fused = read_image(item.fused_path)
        if fused.shape[:2] != pair.shape:
            raise ShapeMismatchError(
                f"{item.fused_path} is {fused.shape[0]}x{fused.shape[1]} but its pair "
                f"{files.mr_path} is {pair.shape[0]}x{pair.shape[1]} (height x width)"
            )
        try:
            values = evaluate_images(pair.mr, pair.func, fused, labels)
        except InvalidImageError as exc:
            raise InvalidImageError(f"{item.fused_path}: {exc}") from None
        rows.append([values[lab] for lab in labels])
        if progress is not None:
            progress(1)
    return EvaluationTable(tuple(m.pair.stem for m in matched), tuple(labels),
                           np.array(rows, dtype=np.float64).reshape(len(rows), len(labels)))


def evaluate_folder(pairs_dir: str | os.PathLike, fused_dir: str | os.PathLike,
                    names: str | Iterable[str] | None = None) -> EvaluationTable:
    """Evaluate the fused images of ``fused_dir`` against the folder of pairs ``pairs_dir``."""
    return evaluate_matched(match_fused(PairFolder(pairs_dir), fused_dir), names)


def table_format(path: str | os.PathLike) -> str:
    """The table format for an output file: ``markdown`` for .md, else ``csv``."""
    return TABLE_FORMATS.get(Path(path).suffix.lower(), "csv")


def check_table_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check before any work that a table can be written to ``path`` (no clobbering, a
    writable folder; :func:`msgfusion.io.files.check_output`)."""
    return check_output(path, overwrite)


def write_table(table: EvaluationTable, path: str | os.PathLike,
                overwrite: bool = False) -> Path:
    """Write the table to ``path`` atomically: Markdown for .md / .markdown, CSV otherwise."""
    path = check_table_output(path, overwrite)
    return write_text(path, table.render(table_format(path)), overwrite)
