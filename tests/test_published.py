"""Published results must match their sources: no stale notebook in the book.

Every executed notebook under ``book/results/`` that is committed to git carries,
in its metadata, the hash of the notebook source it was executed from and of its
effective parameters (:func:`introspection.build.provenance`). When a source or a
profile changes, this test fails and names the command that refreshes the results.
"""

import subprocess
from pathlib import Path

import nbformat
import pytest

from introspection import build, config

ROOT = Path(__file__).resolve().parent.parent


def published_notebooks():
    out = subprocess.run(
        ["git", "ls-files", "book/results/*.ipynb"], cwd=ROOT, capture_output=True, text=True
    )
    return [ROOT / p for p in out.stdout.split()] if out.returncode == 0 else []


def check(notebook: Path) -> str | None:
    """None when up to date, else why not and how to refresh."""
    nb = nbformat.read(notebook, as_version=4)
    meta = nb.metadata.get("introspection")
    if not meta:
        return f"{notebook}: no provenance metadata; re-run `python -m introspection build`"
    source = ROOT / "book" / meta["source"]
    now = build.provenance(source, meta["parameters"])
    if now["source_sha256"] != meta["source_sha256"]:
        return f"{notebook}: {source.name} changed since it was executed; run `{meta['refresh']}`"
    if now["parameters_sha256"] != meta["parameters_sha256"]:
        return (
            f"{notebook}: its effective parameters changed (profile definition?); "
            f"run `{meta['refresh']}`"
        )
    return None


@pytest.mark.parametrize("notebook", published_notebooks(), ids=lambda p: p.name)
def test_published_notebook_is_current(notebook):
    problem = check(notebook)
    assert problem is None, problem


def test_staleness_is_detected(tmp_path):
    source = ROOT / "book" / "05_evaluation.py"
    params = {"experiment": "mnist", "profile": "smoke", "seed": 0, "overrides": {"n_boot": 10}}
    nb = nbformat.v4.new_notebook()
    path = tmp_path / "05_evaluation.ipynb"
    nbformat.write(nb, path)
    build.stamp(path, source, params)
    assert check(path) is None
    meta = nbformat.read(path, as_version=4).metadata["introspection"]
    assert meta["refresh"] == (
        "python -m introspection build --profile smoke --experiment mnist -p n_boot 10"
    )
    # A changed source is stale.
    nb = nbformat.read(path, as_version=4)
    nb.metadata["introspection"]["source_sha256"] = "0" * 64
    nbformat.write(nb, path)
    assert "05_evaluation.py changed" in check(path)
    # Changed effective parameters are stale.
    build.stamp(path, source, params)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["introspection"]["parameters_sha256"] = "0" * 64
    nbformat.write(nb, path)
    assert "parameters changed" in check(path) and "--profile smoke" in check(path)


def test_up_to_date_notebooks_are_not_re_executed(tmp_path):
    source = ROOT / "book" / "01_base_model.py"
    params = {"experiment": "cifar10", "profile": "quick", "seed": 0, "overrides": {}}
    path = tmp_path / "01_base_model.ipynb"
    assert not build.is_current(path, source, params)  # missing
    nbformat.write(nbformat.v4.new_notebook(), path)
    assert not build.is_current(path, source, params)  # no provenance
    build.stamp(path, source, params)
    assert build.is_current(path, source, params)
    assert not build.is_current(path, source, {**params, "overrides": {"epochs": 1}})
    assert not build.is_current(path, source, {**params, "seed": 1})
    assert not build.is_current(path, ROOT / "book" / "02_misclassifications.py", params)


def test_paths_do_not_change_the_provenance():
    source = ROOT / "book" / "07_summary.py"
    a = build.provenance(source, {"profile": "cpu", "results_root": "/here"})
    b = build.provenance(source, {"profile": "cpu", "results_root": "/elsewhere"})
    assert (
        a["parameters_sha256"] == b["parameters_sha256"] and "results_root" not in a["parameters"]
    )


def test_a_later_stage_parameter_leaves_earlier_chapters_current():
    """Changing n_boot (evaluation) re-runs the evaluation chapters only."""
    params = {"experiment": "mnist", "profile": "smoke"}
    changed = {**params, "overrides": {"n_boot": 7}}
    for chapter, stage in build.CHAPTER_STAGE.items():
        source = ROOT / "book" / f"{chapter}.py"
        same = (
            build.provenance(source, params)["parameters_sha256"]
            == build.provenance(source, changed)["parameters_sha256"]
        )
        assert same == ("evaluation" not in config.DEPENDS_ON[stage]), chapter
    assert set(build.CHAPTER_STAGE) == set(build.CHAPTERS)


def test_run_page_is_current():
    """The "Run it yourself" page matches the notebooks, the profiles and the run's times."""
    page = ROOT / "book" / "run_it_yourself.md"
    assert page.is_file(), "missing: python -m introspection build --profile cpu --publish"
    assert page.read_text() == build.run_page_markdown(ROOT), (
        "book/run_it_yourself.md is stale: refresh it with "
        "python -c 'from introspection import build; build.write_run_page(build.repo_root())' "
        "or python -m introspection build --profile cpu --publish"
    )
    text = page.read_text()
    for chapter in build.CHAPTERS:
        assert f"papermill book/{chapter}.ipynb" in text


@pytest.mark.parametrize("notebook", published_notebooks(), ids=lambda p: p.name)
def test_published_notebook_is_clean(notebook):
    problems = build.page_problems(nbformat.read(notebook, as_version=4))
    assert not problems, "\n".join(problems)
