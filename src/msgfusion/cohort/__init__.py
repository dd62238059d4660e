"""Whole cohorts on Dask: every subject of a manifest fused, written and scored on a cluster.

A client of the same Python API as the CLI (no second fusion path): :mod:`.manifest` reads and
builds manifests (:mod:`.bids` for BIDS datasets in and derivatives out), :mod:`.tasks` is what a
worker does with a batch of subjects, :mod:`.runner` plans, submits batches and streams the
results table, :mod:`.deploy` starts ``dask scheduler`` / ``dask worker`` processes on one
machine. ``msgfusion cohort run`` and ``msgfusion cohort make-manifest`` are the command-line face
of :func:`run_cohort` and :func:`make_manifest`.
"""

from msgfusion.cohort.manifest import Subject, iter_manifest, make_manifest, read_manifest
from msgfusion.cohort.runner import CohortConfig, CohortResult, open_client, run_cohort

__all__ = ["CohortConfig", "CohortResult", "Subject", "iter_manifest", "make_manifest",
           "open_client", "read_manifest", "run_cohort"]
