"""Whole cohorts on Dask: every subject of a manifest fused, written and scored on a cluster.

A client of the same Python API as the CLI (no second fusion path): :mod:`.manifest` reads and
builds manifests, :mod:`.tasks` holds the per-subject chain run on the workers, :mod:`.runner`
plans, submits and collects. ``msgfusion cohort run`` and ``msgfusion cohort make-manifest``
are the command-line face of :func:`run_cohort` and :func:`make_manifest`.
"""

from msgfusion.cohort.manifest import Subject, make_manifest, read_manifest
from msgfusion.cohort.runner import CohortConfig, CohortResult, open_client, run_cohort

__all__ = ["CohortConfig", "CohortResult", "Subject", "make_manifest", "open_client",
           "read_manifest", "run_cohort"]
