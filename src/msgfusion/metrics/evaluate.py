"""Evaluating a folder of fused images against their source pairs (``msgfusion evaluate``).

The fused images are matched to the pairs of a folder of pairs (:class:`PairFolder`) by file
name without extension (``FUSED_DIR/16009.png`` <-> ``PAIRS_DIR/MRI/16009.png``); a pair without
a fused image, a fused image without a pair, or two fused files for one pair is an error naming
the files. Each triple is evaluated as :func:`msgfusion.metrics.evaluate_images` does (8-bit
grey / luminance, 0..255). This is the only module of :mod:`msgfusion.metrics` that reads files.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msgfusion.data.datasets import PairFiles, PairFolder, name_list
from msgfusion.errors import DatasetError, OutputExistsError, ShapeMismatchError
from msgfusion.io.images import READ_EXTENSIONS, read_image
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
    by_stem: dict[str, list[Path]] = {}
    for p in sorted(fused_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in READ_EXTENSIONS and not p.name.startswith("."):
            by_stem.setdefault(p.stem, []).append(p)
    stems = {f.stem for f in folder.files}
    problems = []
    missing = [f.name for f in folder.files if f.stem not in by_stem]
    if missing:
        problems.append(f"{len(missing)} pair(s) of {folder.root} have no fused image in "
                        f"{fused_dir}: {name_list(missing)}")
    extra = sorted(p.name for stem, paths in by_stem.items() if stem not in stems for p in paths)
    if extra:
        problems.append(f"{len(extra)} fused image(s) in {fused_dir} match no pair of "
                        f"{folder.root}: {name_list(extra)}")
    ambiguous = sorted(" / ".join(p.name for p in paths)
                       for stem, paths in by_stem.items() if stem in stems and len(paths) > 1)
    if ambiguous:
        problems.append(f"several fused files for one pair in {fused_dir}: {name_list(ambiguous)}")
    if problems:
        raise DatasetError("; ".join(problems))
    return [FusedPair(f, by_stem[f.stem][0]) for f in folder.files]


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
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", *self.labels])
        writer.writerows(self._cells("")[0])  # shortest exact repr
        return buf.getvalue()

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
        values = evaluate_images(pair.mr, pair.func, fused, labels)
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
    """Check before any work that a table can be written to ``path`` without clobbering."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite to replace it)")
    return path


def write_table(table: EvaluationTable, path: str | os.PathLike,
                overwrite: bool = False) -> Path:
    """Write the table to ``path``: Markdown for .md / .markdown, CSV otherwise."""
    path = check_table_output(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table.render(table_format(path)), encoding="utf-8")
    return path
