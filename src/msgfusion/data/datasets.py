"""Folders of image pairs: the AANLIB layout, and any user folder laid out the same way.

A *folder of pairs* (one split of the atlas data) holds an ``MRI/`` folder beside exactly one of
``CT/``, ``PET/``, ``SPECT/``; the folder's name gives the modality. Partners share a file name
without its extension (one rule, :func:`index_by_stem`, for pairs and for fused images)::

    PAIRS_DIR/MRI/16009.png   PAIRS_DIR/CT/16009.png   (or CT/16009.tif)

The AANLIB root nests these as ``<pair>/<split>/`` (``CT-MRI/test/``, ``PET-MRI/train/``, ...).
A missing partner or a size mismatch is an error naming the files; nothing is skipped silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from msgfusion.errors import DatasetError, MsgFusionError
from msgfusion.io.images import READ_EXTENSIONS, check_image
from msgfusion.pair import MODALITIES, FusionPair, load_pair

MR_FOLDERS = ("MRI", "MR")
AANLIB_PAIRS = ("CT-MRI", "PET-MRI", "SPECT-MRI")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class PairFiles:
    """The two files of one pair, before reading."""

    name: str  # the shared file name, e.g. "16009.png"
    mr_path: Path
    func_path: Path
    modality: str

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def _subdir(root: Path, names: Sequence[str]) -> list[Path]:
    wanted = {n.upper() for n in names}
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.upper() in wanted)


def index_by_stem(folder: Path) -> dict[str, Path]:
    """The image files of a folder by file name without extension: the one rule that matches
    partners (MR and CT/PET/SPECT) and fused images to pairs. Hidden files are ignored; two
    images with one stem (``a.png`` and ``a.tif``) are an error, as a partner would be ambiguous.
    Files are listed by name and suffix only (nothing is opened), so FIFOs are listed here and
    refused when read."""
    by_stem: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in READ_EXTENSIONS and not p.name.startswith(".") and not p.is_dir():
            by_stem.setdefault(p.stem, []).append(p)
    ambiguous = [" / ".join(q.name for q in paths) for paths in by_stem.values() if len(paths) > 1]
    if ambiguous:
        raise DatasetError(f"{folder}: several images share a name, so their partner is "
                           f"ambiguous: {name_list(ambiguous)}")
    return {stem: paths[0] for stem, paths in by_stem.items()}


def name_list(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def is_pair_folder(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and bool(_subdir(path, MR_FOLDERS)) and bool(_subdir(path, MODALITIES))


def _pair_folders_below(root: Path, depth: int = 2) -> list[str]:
    """Folders of pairs up to ``depth`` levels below ``root``, relative to it (for hints)."""
    found: list[str] = []
    level = [root]
    for _ in range(depth):
        level = sorted(p for d in level for p in d.iterdir() if p.is_dir())
        found += [str(p.relative_to(root)) for p in level if is_pair_folder(p)]
    return found


class PairFolder(Sequence[FusionPair]):
    """A folder of pairs; indexing reads a :class:`FusionPair` lazily.

    Construction checks the layout, that every MR file has its partner and vice versa, and
    (with ``check_sizes``) every pair with :meth:`problems`: both files are regular image files
    whose headers (and PNG checksums) are sound, within the pixel limit, and of one size.
    Nothing is decoded, so a whole folder is checked before any output is written.
    """

    def __init__(self, root: str | os.PathLike, check_sizes: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder")
        mr_dirs = _subdir(self.root, MR_FOLDERS)
        func_dirs = _subdir(self.root, MODALITIES)
        if len(mr_dirs) != 1 or len(func_dirs) != 1:
            below = _pair_folders_below(self.root) if not mr_dirs + func_dirs else []
            hint = (f"; folders of pairs inside it: {name_list(below, 6)} (give one of them, "
                    f"e.g. {self.root / below[0]})" if below else "")
            raise DatasetError(
                f"{self.root}: a folder of pairs needs one MRI/ folder and exactly one of "
                f"{'/, '.join(MODALITIES)}/ beside it (found: "
                f"{', '.join(p.name for p in mr_dirs + func_dirs) or 'none'}){hint}"
            )
        mr_dir, func_dir = mr_dirs[0], func_dirs[0]
        self.modality = func_dir.name.upper()
        mr_files, func_files = index_by_stem(mr_dir), index_by_stem(func_dir)
        no_func = sorted(mr_files[s].name for s in set(mr_files) - set(func_files))
        no_mr = sorted(func_files[s].name for s in set(func_files) - set(mr_files))
        problems = []
        if no_func:
            problems.append(f"{len(no_func)} file(s) in {mr_dir} have no partner in {func_dir}: "
                            f"{name_list(no_func)}")
        if no_mr:
            problems.append(f"{len(no_mr)} file(s) in {func_dir} have no partner in {mr_dir}: "
                            f"{name_list(no_mr)}")
        if problems:
            raise DatasetError("; ".join(problems))
        if not mr_files:
            raise DatasetError(f"{self.root}: no image files in {mr_dir} and {func_dir}")
        self.files = [
            PairFiles(mr_files[n].name, mr_files[n], func_files[n], self.modality)
            for n in sorted(mr_files)
        ]
        if check_sizes:
            bad = self.problems()
            if bad:
                raise DatasetError(f"{len(bad)} of {len(self)} pair(s) cannot be fused: "
                                   f"{name_list(list(bad.values()), 3)}")

    def problems(self) -> dict[int, str]:
        """Index -> one-line reason, for every pair whose files fail the checks of
        :func:`msgfusion.io.images.check_image` or differ in size (headers only)."""
        bad = {}
        for i, f in enumerate(self.files):
            try:
                a, b = check_image(f.mr_path), check_image(f.func_path)
            except MsgFusionError as exc:
                bad[i] = str(exc)
                continue
            if a != b:
                bad[i] = (f"{f.mr_path} is {a[0]}x{a[1]} but {f.func_path} is {b[0]}x{b[1]} "
                          "(height x width)")
        return bad

    @property
    def label(self) -> str:
        """E.g. ``PET-MRI/test`` for an AANLIB split, else the folder name."""
        parent = self.root.parent.name
        return f"{parent}/{self.root.name}" if parent in AANLIB_PAIRS else self.root.name

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> FusionPair:  # type: ignore[override]
        f = self.files[index]
        return load_pair(f.mr_path, f.func_path, modality=self.modality, name=f.stem)

    def __iter__(self) -> Iterator[FusionPair]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"PairFolder({str(self.root)!r}, {self.modality}, {len(self)} pairs)"


def find_pair_folders(root: str | os.PathLike, split: str | None = None,
                      check_sizes: bool = True) -> list[PairFolder]:
    """All folders of pairs at ``root``: ``root`` itself, or the AANLIB ``<pair>/<split>`` tree.

    ``split`` (``train``/``test``) restricts an AANLIB tree to one split; folders of pairs
    directly below ``root`` (like the bundled samples) are always included. ``check_sizes`` is
    passed to :class:`PairFolder` (false: the caller handles :meth:`PairFolder.problems`).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if is_pair_folder(root):
        return [PairFolder(root, check_sizes)]
    folders = []
    for pair_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if is_pair_folder(pair_dir):
            folders.append(PairFolder(pair_dir, check_sizes))
            continue
        for sub in sorted(p for p in pair_dir.iterdir() if p.is_dir()):
            if is_pair_folder(sub) and (split is None or sub.name == split):
                folders.append(PairFolder(sub, check_sizes))
    if not folders:
        raise DatasetError(
            f"{root}: no folder of pairs found (expected MRI/ beside CT/, PET/ or SPECT/, "
            f"directly or as <pair>/<split>/ like the AANLIB data)"
        )
    return folders


def load_aanlib(
    root: str | os.PathLike, split: str = "test", pairs: Sequence[str] = AANLIB_PAIRS
) -> list[PairFolder]:
    """The AANLIB splits ``<root>/<pair>/<split>`` for the chosen modality pairs, in that order."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = Path(root)
    out = []
    for p in pairs:
        folder = root / p / split
        if not folder.is_dir():
            raise DatasetError(f"{folder}: missing (expected the AANLIB layout <pair>/<split>/)")
        out.append(PairFolder(folder))
    return out


def sample_folders() -> list[PairFolder]:
    """The bundled sample pairs (one CT-MRI, one PET-MRI, one SPECT-MRI from the atlas test split)."""
    root = Path(__file__).resolve().parent / "samples"
    return [PairFolder(root / p) for p in AANLIB_PAIRS]


def _volumes(folder: Path) -> dict[str, Path]:
    """Volume entries of a folder: NIfTI/MetaImage/NRRD files and subfolders (DICOM series);
    a ``.dcm`` file there is a 2-D image (a pair of slices)."""
    from msgfusion.io.volumes import DICOM_SUFFIXES, volume_suffix

    return {p.name: p for p in folder.iterdir() if not p.name.startswith(".")
            and (p.is_dir() or (p.is_file() and volume_suffix(p) not in ("", *DICOM_SUFFIXES)))}


def is_volume_pair_folder(path: str | os.PathLike) -> bool:
    """A folder of pairs (see the module doc) whose MRI/ folder holds volumes."""
    path = Path(path)
    return is_pair_folder(path) and any(_volumes(d) for d in _subdir(path, MR_FOLDERS))


def volume_pairs(root: str | os.PathLike) -> list[PairFiles]:
    """The pairs of a folder of volume pairs: ``MRI/`` beside one of ``CT/``, ``PET/``,
    ``SPECT/``, partners sharing a name (``sub01.nii.gz`` in both, or ``sub01/`` DICOM folders)."""
    root = Path(root)
    mr_dirs, func_dirs = _subdir(root, MR_FOLDERS), _subdir(root, MODALITIES)
    if len(mr_dirs) != 1 or len(func_dirs) != 1:
        raise DatasetError(f"{root}: a folder of volume pairs needs one MRI/ folder and exactly "
                           f"one of {'/, '.join(MODALITIES)}/ beside it")
    mr, func = _volumes(mr_dirs[0]), _volumes(func_dirs[0])
    unpaired = sorted(set(mr) ^ set(func))
    if unpaired:
        raise DatasetError(f"{root}: {len(unpaired)} volume(s) without a partner of the same name "
                           f"in {mr_dirs[0].name}/ and {func_dirs[0].name}/: {name_list(unpaired)}")
    modality = func_dirs[0].name.upper()
    return [PairFiles(n, mr[n], func[n], modality) for n in sorted(mr)]
