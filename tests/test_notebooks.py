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
    names = set()
    for line in tagged[0].source.splitlines():
        name, _, rest = line.partition("=")
        assert rest and "#" in rest, f"each parameter needs a value and a comment: {line!r}"
        names.add(name.strip())
    expected = CHAPTER_PARAMS if source.stem in build.CHAPTERS else {"profile", "results_root"}
    assert expected <= names
