"""The training recipes of the deep baselines, one module each, beside the trainer: the networks
they train live in :mod:`msgfusion.methods.deep` and know nothing of them."""

from __future__ import annotations

import importlib

from msgfusion.errors import UnknownMethodError
from msgfusion.train.recipes.base import Recipe, save_weights

#: The baselines trained here, by method name (each module defines ``RECIPE``).
BASELINES = ("ifcnn", "nestfuse", "fusiondn", "fusiongan", "funfusean")


def get_recipe(name: str) -> Recipe:
    """The recipe of the deep baseline ``name``."""
    if name not in BASELINES:
        raise UnknownMethodError(f"no trainable baseline named {name!r}; choose one of "
                                 f"{', '.join(BASELINES)}")
    return importlib.import_module(f"{__name__}.{name}").RECIPE


__all__ = ["BASELINES", "Recipe", "get_recipe", "save_weights"]
