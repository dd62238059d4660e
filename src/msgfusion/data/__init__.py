"""Paired datasets and the bundled sample pairs."""

from msgfusion.data.datasets import PairFolder, find_pair_folders, load_aanlib, sample_folders

__all__ = ["PairFolder", "find_pair_folders", "load_aanlib", "sample_folders"]
