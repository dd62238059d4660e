"""Generated blocks of the docs are what their command writes from the committed files today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_baseline_training_table_in_methods_md_is_current():
    """New baseline weights or logs without `python benchmarks/baseline_training.py` fail here."""
    script = _script("baseline_training")
    assert script.table() in (REPO / "docs" / "methods.md").read_text(encoding="utf-8")


def test_the_shipped_networks_recipes_are_found_among_the_cv_recipes():
    """docs/msgfusion.md compares the CV recipes with the one the shipped network was trained by
    (at its own length): a change to the shipped config without its CV recipe fails here."""
    from msgfusion.train.experiment import ExperimentConfig

    script = _script("msgfusion_results")
    configs = {p.stem: ExperimentConfig.from_file(p) for p in sorted(script.CV_DIR.glob("*.json"))}
    expected = {"CT-MRI": "ct_wider", "PET-MRI": "shipped_full", "SPECT-MRI": "spect_contrast_mi"}
    for group, recipe in expected.items():
        have = [r for r, c in configs.items() if group in c.pairs]
        assert script._shipped_recipe(configs, have, group) == recipe


def test_cohort_md_is_rendered_from_its_measurements():
    """docs/cohort.md is what `benchmarks/cohort.py --render` writes from docs/cohort.json."""
    script = _script("cohort")
    page = script.render(*script.load_measurements(REPO / "docs" / "cohort.json"))
    assert page == (REPO / "docs" / "cohort.md").read_text(encoding="utf-8")


def test_the_goal_ranks_the_metrics_that_five_published_methods_report():
    """Issue 33: EN is not ranked, and |rSFe| only where at least five published methods report
    it (CT-MRI; for PET-MRI and SPECT-MRI three do)."""
    from msgfusion.bench.peers import parse_peers

    script = _script("msgfusion_results")
    peers = parse_peers(script.PEERS)
    ranked = {g: [c.label for c in script.ranked_columns(p)] for g, p in peers.items()}
    assert ranked == {"CT-MRI": ["SD", "MI", "|rSFe|", "Q_S", "VIFF", "Qabf"],
                      "PET-MRI": ["SD", "MI", "Q_S", "VIFF", "Qabf"],
                      "SPECT-MRI": ["SD", "MI", "Q_S", "VIFF", "Qabf"]}
    estimate = {"SD": (80.0, "a"), "|rSFe|": (0.07, "b")}
    summary = {"SD": {"mean": 81.0}, "rSFe": {"mean": -0.08}}
    assert script._firsts_on_folds(summary, estimate) == ["SD"]  # |rSFe| 0.08 > 0.07 loses
