import subprocess
import sys

import pytest

from introspection import build


@pytest.mark.parametrize(
    "text, value",
    [
        ("3", 3),
        ("0.25", 0.25),
        ("true", True),
        ("False", False),
        ("null", None),
        ("None", None),
        ("pixels", "pixels"),
        ("1e-3", 1e-3),
    ],
)
def test_parse_value(text, value):
    assert build.parse_value(text) == value


def test_parameters_split_between_notebook_and_profile():
    nb, over = build._split_parameters([("seed", "3"), ("epochs", "5"), ("fgsm_eps", "0.1")])
    assert nb == {"seed": 3} and over == {"epochs": 5, "fgsm_eps": 0.1}
    with pytest.raises(build.ConfigError, match="Unknown parameter 'colour'"):
        build._split_parameters([("colour", "red")])


def test_toc_lists_every_executed_chapter(tmp_path):
    for exp in ("mnist", "cifar10"):
        folder = tmp_path / "book" / "results" / "smoke" / exp
        folder.mkdir(parents=True)
        for chapter in build.CHAPTERS:
            if not (exp == "cifar10" and chapter == "11_adaptive"):  # not executed yet
                (folder / f"{chapter}.ipynb").write_text("{}")
    toc = build.write_toc("smoke", ["mnist", "cifar10"], tmp_path).read_text()
    for exp in ("mnist", "cifar10"):
        for chapter in build.CHAPTERS:
            listed = f"book/results/smoke/{exp}/{chapter}" in toc
            assert listed == (not (exp == "cifar10" and chapter == "11_adaptive"))
    assert "book/methods" in toc and f"book/results/smoke/{build.SUMMARY}" in toc
    assert toc.count("Beyond the paper") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--profile", "fast"], "'profile' must be one of"),
        (["--experiment", "svhn"], "--experiment must be one of"),
        (["-p", "epochs", "0"], "'epochs' must be >= 1"),
        (["-p", "fgsm_eps", "1.5"], "'fgsm_eps' must be <= 1.0"),
        (["--data-dir", "/nonexistent"], "'data_dir'"),
        (["--repository-url", "https://gitlab.com/a/b"], "--repository-url must look like"),
    ],
)
def test_cli_rejects_bad_input_before_any_work(args, message):
    out = subprocess.run(
        [sys.executable, "-m", "introspection", "build", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.count("\n") == 1


def test_cli_knows_its_options():
    out = subprocess.run(
        [sys.executable, "-m", "introspection", "build", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    for option in (
        "--profile",
        "--experiment",
        "-p",
        "--data-dir",
        "--artifacts-dir",
        "--no-html",
        "--html-only",
        "--force",
        "--retrain",
        "--publish",
        "--repository-url",
    ):
        assert option in out.stdout


@pytest.mark.parametrize(
    "url, clean",
    [
        ("https://github.com/org/introspection", "https://github.com/org/introspection"),
        ("https://github.com/org/introspection/", "https://github.com/org/introspection"),
        ("https://github.com/org/intro.spection.git", "https://github.com/org/intro.spection"),
    ],
)
def test_repository_url_is_checked(url, clean):
    assert build.check_repository_url(url) == clean


@pytest.mark.parametrize(
    "url",
    [
        "",
        "github.com/org/repo",
        "https://github.com/org",
        "http://github.com/a/b",
        "https://example.org/a/b",
    ],
)
def test_bad_repository_url_is_refused(url):
    with pytest.raises(build.ConfigError, match="repository-url"):
        build.check_repository_url(url)


def test_launch_config_adds_buttons_and_keeps_the_book_config(tmp_path):
    import yaml

    root = build.repo_root()
    (tmp_path / "_config.yml").write_text((root / "_config.yml").read_text())
    out = build.launch_config(tmp_path, "https://github.com/org/repo.git")
    conf = yaml.safe_load(out.read_text())
    original = yaml.safe_load((root / "_config.yml").read_text())
    assert conf["repository"] == {"url": "https://github.com/org/repo", "branch": "main"}
    assert conf["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert conf["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert conf["sphinx"] == original["sphinx"] and conf["execute"] == original["execute"]
    assert (tmp_path / "_config.yml").read_text() == (root / "_config.yml").read_text()


@pytest.mark.slow
def test_launch_buttons_render(tmp_path):
    """A one-notebook book built with the launch config links to Binder and Colab."""
    import json
    import shutil

    root = build.repo_root()
    shutil.copy(root / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: page\n")
    (tmp_path / "intro.md").write_text("# Intro\n\nA page.\n")
    nb = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# A chapter\n"]}],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "page.ipynb").write_text(json.dumps(nb))
    build.build_html(tmp_path / "_toc.yml", tmp_path, repository_url="https://github.com/org/repo")
    html = (tmp_path / "_build" / "html" / "page.html").read_text()
    assert "https://mybinder.org/v2/gh/org/repo/main?urlpath=lab/tree/page.ipynb" in html
    assert "https://colab.research.google.com/github/org/repo/blob/main/page.ipynb" in html


def test_missing_tools_are_named_before_any_work(monkeypatch):
    from importlib import metadata, util

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda n: None if n == "jupyter_book" else real(n))
    with pytest.raises(build.ConfigError, match="jupyter_book not installed for .*requirements"):
        build.check_tools(html=True)
    build.check_tools(html=False)  # executing notebooks only does not need Jupyter Book
    monkeypatch.setattr(util, "find_spec", real)
    monkeypatch.setattr(metadata, "version", lambda n: "2.0.1")
    with pytest.raises(build.ConfigError, match="jupyter-book 2.0.1 .* needs 1.x"):
        build.check_tools(html=True)


def test_missing_data_is_named_before_any_work(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("INTROSPECTION_DATA_DIR", raising=False)  # only the folder given
    (tmp_path / "mnist.npz").write_bytes(b"")
    with pytest.raises(build.ConfigError, match="fashion_mnist.npz, cifar10.npz not found in"):
        build.check_data(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "introspection",
            "build",
            "--profile",
            "smoke",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "fashion_mnist.npz, cifar10.npz not found" in out.stderr


def test_jupyter_book_runs_from_the_interpreter_without_path():
    """build_html calls Jupyter Book as a library of sys.executable: PATH plays no part."""
    out = subprocess.run(
        [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "Jupyter Book" in out.stdout and ": 1." in out.stdout


def test_terminal_text_keeps_what_a_terminal_shows():
    assert build.terminal_text("a:  0%\ra: 50%\ra:100%\ndone\n") == "a:100%\ndone\n"
    assert build.terminal_text("bar\r   \r") == ""
    assert build.terminal_text("one\n\ntwo") == "one\n\ntwo"


def test_tidy_merges_streams_and_relativises_papermill_paths(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="\rgen:  0%"),
        nbformat.v4.new_output("stream", name="stderr", text="\rgen: 100%"),
        nbformat.v4.new_output("stream", name="stderr", text="\n"),
        nbformat.v4.new_output("stream", name="stdout", text="computed in 3 s\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\rbar\r   \r"),
    ]
    nb.cells.append(cell)
    nb.metadata["papermill"] = {
        "input_path": str(tmp_path / "book" / "05_evaluation.ipynb"),
        "output_path": str(tmp_path / "book" / "results" / ".05_evaluation.running.ipynb"),
    }
    build.tidy(nb, tmp_path)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [
        ("stderr", "gen: 100%\n"),
        ("stdout", "computed in 3 s\n"),
    ]
    assert nb.metadata["papermill"]["input_path"] == "book/05_evaluation.ipynb"
    assert nb.metadata["papermill"]["output_path"] == "book/results/05_evaluation.ipynb"
    assert build.page_problems(nb) == []


@pytest.mark.parametrize(
    "what, output",
    [
        (
            "an absolute path",
            ("stream", {"name": "stdout", "text": "rows written to /home/ann/r/t.csv\n"}),
        ),
        (
            "a TensorFlow log",
            (
                "stream",
                {
                    "name": "stderr",
                    "text": "I0000 00:00:1796160211.991271   29529 port.cc:153] oneDNN custom\n",
                },
            ),
        ),
        (
            "a Python warning",
            ("stream", {"name": "stderr", "text": "x.py:2: FutureWarning: use suffixes\n"}),
        ),
        ("an epoch log", ("stream", {"name": "stdout", "text": "Epoch 3/60\n"})),
        (
            "NaN",
            (
                "execute_result",
                {"data": {"text/plain": "   auroc\nfgsm  NaN"}, "execution_count": 1},
            ),
        ),
    ],
)
def test_page_problems_finds_each_kind(what, output):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    kind, fields = output
    cell.outputs = [nbformat.v4.new_output(kind, **fields)]
    nb.cells.append(cell)
    problems = build.page_problems(nb)
    assert problems and all(p.startswith(what) for p in problems), problems
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="AUROC 97.5 (1/9 of 20)\n")
    ]
    assert build.page_problems(nb) == []
