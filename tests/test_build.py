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
        "--publish",
    ):
        assert option in out.stdout
