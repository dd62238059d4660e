"""Fusion methods, all behind one signature and found by name in one registry."""

from msgfusion.methods.registry import (
    DEFAULT_METHOD,
    FusionMethod,
    fuse_pairs,
    get_method,
    list_methods,
    register,
)

__all__ = ["DEFAULT_METHOD", "FusionMethod", "fuse_pairs", "get_method", "list_methods", "register"]
