"""The book's notebook sources: paired, in sync, parameterised, free of outputs."""

from pathlib import Path

import jupytext
import nbformat
import pytest

from introspection import build

BOOK = Path(__file__).resolve().parent.parent / "book"
SOURCES = sorted(BOOK.glob("[0-9][0-9]_*.py"))
CHAPTER_PARAMS = {
    "experiment",
    "profile",
    "seed",
    "data_dir",
    "artifacts_dir",
    "results_dir",
    "overrides",
}


def test_every_chapter_has_a_source():
    names = {p.stem for p in SOURCES}
    assert names == {*build.CHAPTERS, build.SUMMARY}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync_without_outputs(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run 'jupytext --sync {source}'"
    text = source.read_text()
    assert "format_name: percent" in text
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # The .ipynb holds exactly the cells of the .py source.
    assert jupytext.writes(nb, fmt="py:percent") == text, (
        f"{source.name} and {ipynb.name} differ: run 'jupytext --sync {source}'"
    )
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "committed outputs"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_one_parameters_cell(source):
    nb = jupytext.read(source)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    lines = [line for line in tagged[0].source.splitlines() if line.strip()]
    # Papermill reads every line whole: a name, a type, a value and a comment each.
    params = build._chapter_parameters(source)
    assert len(params) == len(lines), "papermill could not parse every parameter line"
    for name, typ, value, comment in params:
        assert typ != "None" and value and comment, f"{name}: needs a type, a value, a comment"
    expected = CHAPTER_PARAMS if source.stem in build.CHAPTERS else {"profile", "results_root"}
    assert expected <= {p[0] for p in params}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_papermill_help_lists_every_parameter_with_its_type(source):
    """``papermill --help-notebook``, run from this interpreter as a user would."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "papermill", "--help-notebook", str(source.with_suffix(".ipynb"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Unable to parse" not in out.stdout + out.stderr
    assert "Unknown type" not in out.stdout
    for name, typ, _, _ in build._chapter_parameters(source):
        assert f"  {name}: {typ} (default " in out.stdout, name
