"""``python -m introspection build``: execute the book's notebooks, then build the HTML.

Per experiment, papermill runs the chapter notebooks of ``book/`` in order into
``book/results/<profile>/<experiment>/`` (with their figures and tables); the summary notebook
then compares the experiments and Jupyter Book builds the HTML from a clean ``_build``,
warnings as errors. Every parameter is validated before any notebook runs. Entry: :func:`main`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import itertools
import json
import os
import re
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path

from . import artifacts, config, datasets, hardware
from .config import EXPERIMENTS, PARAMETERS, PROFILES, ConfigError, configure

__all__ = [
    "CHAPTERS", "CHAPTER_STAGE", "PAPER_CHAPTERS", "BEYOND_CHAPTERS", "main", "parse_value",
    "provenance", "stamp", "write_toc", "run_page_markdown", "write_run_page", "run_notebooks",
    "build_html", "check_repository_url", "check_tools", "check_data", "publish_weights",
    "launch_config",
]

#: The chapters that reproduce the paper, in order.
PAPER_CHAPTERS = (
    "01_base_model", "02_misclassifications", "03_logit_analysis", "04_introspection_net",
    "05_evaluation", "06_differences",
)
#: The chapters beyond the paper, in order.
BEYOND_CHAPTERS = ("08_detectors", "09_unseen", "10_seeds", "11_adaptive", "12_protocol")
#: The chapter notebooks, in order, run once per experiment.
CHAPTERS = PAPER_CHAPTERS + BEYOND_CHAPTERS
#: The pipeline stage whose parameters (its own and its upstream stages') determine
#: each chapter: a chapter is stale only when one of these changes. A chapter's stage is
#: its name without the number, except for chapter 06, which reads evaluation's results.
CHAPTER_STAGE = {c: c[3:] for c in CHAPTERS} | {"06_differences": "evaluation"}
#: Run once per build, after the experiments.
SUMMARY = "07_summary"
#: Notebook parameters that are not profile parameters.
_NOTEBOOK_PARAMS = ("seed", "data_dir", "artifacts_dir")
_PATH_PARAMS = ("data_dir", "artifacts_dir", "results_dir", "results_root")
#: An experiment's caption in the table of contents, by its network (MNIST has one).
_TITLES = {
    "mnist": "MNIST, the paper's Table 1 CNN", "wide_resnet": "CIFAR-10, a Wide ResNet",
    "airbench": "CIFAR-10, airbench94's network",
}


def repo_root() -> Path:
    """The checkout holding the book (``_config.yml``, ``book/``)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "_config.yml").is_file() or not (root / "book").is_dir():
        raise RuntimeError(f"No book found beside the package (looked in {root}).")
    return root


def parse_value(text: str):
    """Parse a ``-p NAME VALUE`` value as papermill does: number, boolean, null or text."""
    low = text.strip().lower()
    if low in ("true", "false", "none", "null"):
        return {"true": True, "false": False}.get(low)
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m introspection", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute the notebooks and build the HTML book")
    b.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)}")
    b.add_argument(
        "--experiment", default="all", help=f"one of {', '.join(EXPERIMENTS)} or all (default)"
    )
    b.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="override a parameter (repeatable)",
    )
    b.add_argument("--data-dir", help="folder of the .npz dataset files")
    b.add_argument("--artifacts-dir", help="cache of models and arrays")
    options = {  # flags, except --repository-url (a text)
        "--no-html": "execute the notebooks only",
        "--force": "re-execute every notebook from scratch, training the base classifiers again",
        "--retrain": "train the base classifiers from scratch instead of reusing cached or "
        "published weights (every notebook after them is re-executed too)",
        "--publish": "make this profile's results the published book (writes _toc.yml)",
        "--repository-url": "public GitHub repository of the book (https://github.com/ORG/REPO): "
        "adds Binder and Colab launch buttons and a repository button to every chapter "
        "(default: $INTROSPECTION_REPOSITORY_URL; none without it)",
        "--html-only": "build the HTML from the notebooks already executed",
    }
    url = os.environ.get("INTROSPECTION_REPOSITORY_URL")
    for flag, text in options.items():
        kind = {"default": url} if flag == "--repository-url" else {"action": "store_true"}
        b.add_argument(flag, help=text, **kind)
    return p


def _split_parameters(pairs) -> tuple[dict, dict]:
    notebook, overrides = {}, {}
    for name, value in pairs:
        if name not in _NOTEBOOK_PARAMS and name not in PARAMETERS:
            known = ", ".join((*_NOTEBOOK_PARAMS, *sorted(PARAMETERS)))
            raise ConfigError(f"Unknown parameter {name!r}. Known: {known}.")
        (notebook if name in _NOTEBOOK_PARAMS else overrides)[name] = parse_value(value)
    return notebook, overrides


def run_notebooks(
    profile: str, experiment: str, notebook_params: dict, overrides: dict, root: Path,
    force: bool = False, retrain: bool = False,
) -> dict:
    """Execute one experiment's chapter notebooks with papermill; return their wall seconds.

    ``notebook_params``: ``seed``, ``data_dir``, ``artifacts_dir`` when given; ``overrides``:
    profile parameters passed to every notebook; ``retrain``: chapter 01 trains the base
    classifier from scratch (implies ``force``).
    """
    out_dir = root / "book" / "results" / profile / experiment
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {
        "experiment": experiment, "profile": profile, "overrides": overrides,
        # Explicit, so results land beside the notebooks whatever checkout the kernel imports
        # from; relative to the checkout (papermill's cwd), so no machine's path is published.
        "results_dir": str(out_dir.relative_to(root)),
        **notebook_params,
    }
    times = {}
    for chapter in CHAPTERS:
        t0 = time.perf_counter()
        source, target = root / "book" / f"{chapter}.ipynb", out_dir / f"{chapter}.ipynb"
        if not (force or retrain) and is_current(target, source.with_suffix(".py"), params):
            print(f"[{experiment}] {chapter}: up to date, not re-executed", flush=True)
            continue
        print(f"[{experiment}] {chapter} ...", flush=True)
        extra = {"retrain": True} if retrain and chapter == "01_base_model" else {}
        _execute(source, target, {**params, **extra}, root)
        times[chapter] = time.perf_counter() - t0
        print(f"[{experiment}] {chapter}: done in {times[chapter]:.1f} s", flush=True)
    return times


def _execute(source: Path, target: Path, params: dict, root: Path) -> None:
    import papermill as pm

    tmp = target.with_name(f".{target.stem}.running.ipynb")
    # The provenance of the source as executed: an edit during the run leaves it stale.
    made_from = provenance(source.with_suffix(".py"), params)
    try:
        pm.execute_notebook(
            str(source), str(tmp), parameters=params, kernel_name="python3", progress_bar=True,
            cwd=str(root), report_mode=False,
        )
    except pm.PapermillExecutionError as err:
        raise SystemExit(
            f"{source.name} failed ({err.ename}: {err.evalue}); "
            f"see the partly executed notebook {tmp}"
        ) from None
    stamp(tmp, source.with_suffix(".py"), params, made_from)
    os.replace(tmp, target)


def provenance(source: Path, params: dict) -> dict:
    """What an executed notebook was made from: hashes of its source and parameters.

    ``params``: those papermill injected, machine-specific paths left out; a chapter hashes the
    effective values of its stage's and upstream stages' parameters (:data:`CHAPTER_STAGE`).
    Keys: ``source``, ``source_sha256``, ``parameters``, ``effective_parameters``,
    ``parameters_sha256``, ``refresh`` (the command that re-executes it).
    """
    params = {k: v for k, v in params.items() if k not in _PATH_PARAMS}
    overrides = params.get("overrides") or {}
    effective = params
    refresh = f"python -m introspection build --profile {params['profile']}"
    if "experiment" in params:
        exp = params["experiment"]
        cfg = configure(exp, params["profile"], overrides=overrides, seed=params.get("seed", 0))
        stage = CHAPTER_STAGE.get(source.stem)
        effective = {
            "experiment": cfg.experiment, "profile": cfg.profile, "seed": cfg.seed,
            **(cfg.stage_params(stage) if stage else cfg.params),
        }
        refresh += f" --experiment {exp}"
    refresh += "".join(f" -p {k} {v}" for k, v in sorted(overrides.items()))
    effective = artifacts.canonical_params(effective)
    digest = hashlib.sha256(json.dumps(effective, sort_keys=True).encode()).hexdigest()
    return {
        "source": source.name, "source_sha256": artifacts.file_sha256(source),
        "parameters": artifacts.canonical_params(params), "effective_parameters": effective,
        "parameters_sha256": digest, "refresh": refresh,
    }


def is_current(notebook: Path, source: Path, params: dict) -> bool:
    """Whether an executed notebook (may not exist) was made from ``source`` with ``params``."""
    import nbformat

    try:
        meta = nbformat.read(notebook, as_version=4).metadata.get("introspection") or {}
    except Exception:  # noqa: BLE001 - a missing or unreadable notebook is not current
        return False
    now = provenance(source, params)
    return all(meta.get(k) == now[k] for k in ("source_sha256", "parameters_sha256"))


def terminal_text(text: str) -> str:
    r"""Stream text as a terminal shows it: each carriage return overwrites its line.

    Lines left blank by the redraws (tqdm progress bars) are dropped.

    Examples
    --------
    >>> terminal_text("a:  0%\ra: 50%\ra:100%\ndone\n")
    'a:100%\ndone\n'
    """
    shown = [(line, line.rstrip("\r").rsplit("\r", 1)[-1]) for line in text.split("\n")]
    out = "\n".join(last for line, last in shown if last.strip() or "\r" not in line)
    return out if out.strip() else ""


def tidy(nb, root: Path) -> None:
    """Merge a notebook's streams as a terminal shows them; make papermill's paths relative."""
    for cell in nb.cells:
        if "outputs" not in cell:
            continue
        kept = []
        # Consecutive outputs of one stream form a group; any other output is its own.
        for _, (out, *more) in itertools.groupby(
            cell["outputs"], lambda o: o.get("name") if o.get("output_type") == "stream" else id(o)
        ):
            if out.get("output_type") == "stream":
                out["text"] = terminal_text("".join(o["text"] for o in (out, *more)))
            if out.get("output_type") != "stream" or out["text"]:
                kept.append(out)
        cell["outputs"] = kept
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            path = Path(meta[key])
            if path.name.startswith(".") and path.name.endswith(".running.ipynb"):
                path = path.with_name(path.name[1 : -len(".running.ipynb")] + ".ipynb")
            try:
                meta[key] = str(path.resolve().relative_to(root.resolve()))
            except ValueError:
                meta[key] = path.name


#: What a published notebook may not show: (what, pattern). Absolute paths are looked for
#: in the whole notebook (sources, outputs, metadata), the others in what cells output.
PAGE_PROBLEMS = (
    ("an absolute path", re.compile(r"""(?m:^|[\s"'(=:])(?:/[\w.-]+){2,}/|[A-Za-z]:\\\\[\w.-]""")),
    ("a TensorFlow log", re.compile(r"absl::|oneDNN|^[IWE]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\]", re.M)),
    ("a Python warning", re.compile(r"\b\w*Warning\b: |warnings\.warn")),
    ("an epoch log", re.compile(r"^Epoch \d+/\d+", re.M)),
    ("NaN", re.compile(r"\bNaN\b|(?<![\w.])nan(?![\w.])")),
)


def _strings(node) -> list[str]:
    """Every string in a JSON-like tree, images (base64) left out."""
    if isinstance(node, list):
        node = dict(enumerate(node))
    if not isinstance(node, dict):
        return [node] if isinstance(node, str) else []
    return [s for k, v in node.items() if not str(k).startswith("image/") for s in _strings(v)]


def page_problems(nb) -> list[str]:
    """What a reader should not see in a notebook (:data:`PAGE_PROBLEMS`): what, cell, text."""
    (what, pattern), *others = PAGE_PROBLEMS
    found = [(what, text, m) for text in _strings(nb) if (m := pattern.search(text))]
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            shown = [data.get(k, "") for k in ("text/plain", "text/html", "text/markdown")]
            for text in (out.get("text", ""), *shown, out.get("evalue", "")):
                text = "".join(text) if isinstance(text, list) else str(text)
                found += [(f"{w} in cell {i}", text, m) for w, p in others if (m := p.search(text))]
    return [f"{what}: {text[max(0, m.start() - 40) : m.end() + 40]!r}" for what, text, m in found]


def stamp(notebook: Path, source: Path, params: dict, record: dict | None = None) -> None:
    """Put ``record`` (default: :func:`provenance` now) in a notebook's metadata; tidy it."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    tidy(nb, Path(source).resolve().parent.parent)
    nb.metadata["introspection"] = record or provenance(source, params)
    nbformat.write(nb, notebook)


def write_toc(profile: str, experiments, root: Path, path: Path | None = None) -> Path:
    """Write the table of contents of the executed chapters to ``path`` (or ``_build/``)."""
    results = root / "book" / "results" / profile
    title = {
        e: _TITLES["mnist" if e == "mnist" else configure(e, profile)["architecture"]]
        for e in experiments
    }

    def part(caption, files):
        return [f"  - caption: {caption}", "    chapters:", *(f"      - file: {f}" for f in files)]

    def done(exp, chapters):  # only chapters executed: a profile may be published in parts
        executed = [c for c in chapters if (results / exp / f"{c}.ipynb").is_file()]
        return [f"book/results/{profile}/{exp}/{c}" for c in executed]

    lines = ["format: jb-book", "root: book/intro", "parts:"]
    lines += part("The paper and our choices", ["book/methods", "book/run_it_yourself"])
    for exp in experiments:
        lines += part(f"{title[exp]} ({profile} profile)", done(exp, PAPER_CHAPTERS))
    for exp in experiments:
        if beyond := done(exp, BEYOND_CHAPTERS):
            lines += part(f"Beyond the paper — {title[exp]}", beyond)
    lines += part("Results", [f"book/results/{profile}/{SUMMARY}", "book/references"])
    path = path or root / "_build" / f"toc-{profile}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _chapter_parameters(source: Path) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) of each parameter, as papermill itself reads them."""
    import jupytext
    from papermill.translators import PythonTranslator

    nb = jupytext.read(source)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return [
        (p.name, p.inferred_type_name, p.default, p.help) for p in PythonTranslator.inspect(cell)
    ]


def _chapter_title(source: Path) -> str:
    lines = source.read_text().splitlines()
    return next((line[4:].strip() for line in lines if line.startswith("# # ")), source.stem)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def run_page_markdown(root: Path, published: str = "cpu") -> str:
    """The "Run it yourself" page, in Markdown: commands, parameters and time of each chapter.

    Fills ``introspection/data/run_page.md`` from the notebooks' ``parameters`` cells, the
    profiles, the builds measured (``book/build_times.csv``) and the stage times recorded by
    the ``published`` profile (``stage_seconds.json``), so it cannot drift from them.
    """
    results, book = root / "book" / "results" / published, root / "book"
    machine = _read_json(results / "mnist" / "summary.json").get("machine", {})
    where = "2 CPU cores"
    if "cpu" in machine:
        where = f"{machine['cpu']} ({machine.get('isa', '?')}), {machine.get('cores', '?')} cores"
    page = string.Template((Path(__file__).with_name("data") / "run_page.md").read_text())
    seconds = {exp: _read_json(results / exp / "stage_seconds.json") for exp in EXPERIMENTS}
    chapter_times = []
    for c in CHAPTERS:
        stage, title = CHAPTER_STAGE[c], _chapter_title(book / f"{c}.py")
        mnist, cifar10 = (_duration(seconds[exp].get(stage)) for exp in ("mnist", "cifar10"))
        chapter_times.append(f"| `{c}`: {title} | {stage} | {mnist} | {cifar10} |")
    with (book / "build_times.csv").open() as f:
        build_times = [
            f"| `{r['profile']}` | {r['base_models']} | {r['cpu']} | {r['isa']} | {r['cores']} | "
            f"{float(r['total_seconds']) / 60:.0f} min | {r['date']} |"
            for r in csv.DictReader(f)
        ]
    commands = []
    for c in (*CHAPTERS, SUMMARY):
        args = "-p profile quick" if c == SUMMARY else "-p experiment cifar10 -p profile quick"
        commands += [
            f"### {_chapter_title(book / f'{c}.py')}", "", "```bash",
            f"papermill book/{c}.ipynb out.ipynb {args}", "```", "",
            "| parameter | type | default | meaning |", "|---|---|---|---|",
        ]
        for name, typ, value, comment in _chapter_parameters(book / f"{c}.py"):
            text = comment.replace("|", "/").replace("<", "&lt;").replace(">", "&gt;")
            commands.append(f"| `{name}` | {typ} | `{value}` | {text} |")
        commands.append("")
    return page.substitute(
        profiles="\n".join(f"| `{name}` | {p['description']} |" for name, p in PROFILES.items()),
        published=published, machine=where, chapter_times="\n".join(chapter_times),
        build_times="\n".join(build_times), commands="\n".join(commands),
    )


def write_run_page(root: Path) -> Path:
    """Write :func:`run_page_markdown` to ``book/run_it_yourself.md``."""
    path = root / "book" / "run_it_yourself.md"
    path.write_text(run_page_markdown(root))
    return path


def check_repository_url(url: str) -> str:
    """Validate a GitHub repository URL (Binder and Colab need GitHub); strip ``/`` or ``.git``."""
    m = re.fullmatch(r"(https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(\.git)?/?", url or "")
    if not m:
        raise ConfigError(
            f"--repository-url must look like https://github.com/ORG/REPO (Binder and Colab "
            f"launch from GitHub); got {url!r}."
        )
    return m.group(1)


def launch_config(root: Path, repository_url: str, branch: str = "main") -> Path:
    """Write ``_build/_config.launch.yml``: ``_config.yml`` plus repository and launch buttons."""
    import yaml

    conf = yaml.safe_load((root / "_config.yml").read_text())
    conf["repository"] = {"url": check_repository_url(repository_url), "branch": branch}
    conf.setdefault("html", {}).update({"use_repository_button": True, "use_issues_button": True})
    conf["launch_buttons"] = {  # where sphinx-book-theme's launch buttons open a chapter
        "notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org",
        "colab_url": "https://colab.research.google.com",
    }
    out = root / "_build" / "_config.launch.yml"
    artifacts.atomic_write(out, lambda tmp: tmp.write_text(yaml.safe_dump(conf, sort_keys=False)))
    return out


def build_html(toc: Path, root: Path, repository_url: str | None = None) -> Path:
    """Build the HTML book afresh, warnings as errors (with launch buttons for a repository)."""
    for sub in ("html", "jupyter_execute", ".doctrees"):
        shutil.rmtree(root / "_build" / sub, ignore_errors=True)
    # Jupyter Book 1.x as a library, in this interpreter: no executable on PATH needed.
    cmd = [
        sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
        "build", str(root), "--toc", str(toc), "-W", "--keep-going", "--all",
    ]
    if repository_url:
        cmd += ["--config", str(launch_config(root, repository_url))]
    result = subprocess.run(cmd, cwd=root)
    if result.returncode != 0:
        raise SystemExit(f"jupyter-book build failed (exit {result.returncode}); see above.")
    return root / "_build" / "html" / "index.html"


def check_tools(html: bool = True) -> None:
    """Check that what a build runs (``html``: Jupyter Book 1.x too) is installed here."""
    from importlib import metadata, util

    need = ["papermill", "nbformat", "jupytext", "ipykernel"] + (["jupyter_book"] if html else [])
    if missing := [m for m in need if util.find_spec(m) is None]:
        raise ConfigError(
            f"{', '.join(missing)} not installed for {sys.executable}; "
            "run `python -m pip install -r requirements.txt` with this interpreter."
        )
    if html and int((version := metadata.version("jupyter-book")).split(".")[0]) >= 2:
        raise ConfigError(
            f"jupyter-book {version} is installed; the book needs 1.x (2.x ignores "
            "_config.yml and _toc.yml): `python -m pip install 'jupyter-book<2'`."
        )
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        raise ConfigError(
            "no Jupyter kernel named python3; run `python -m ipykernel install --user`."
        ) from None


def check_data(data_dir=None, names=("mnist", "fashion_mnist", "cifar10")) -> None:
    """Check that the datasets are in the data folder, or else that Keras can download them."""
    if dirs := datasets._candidate_dirs(data_dir):
        if missing := [n for n in names if not any((d / f"{n}.npz").is_file() for d in dirs)]:
            raise ConfigError(
                f"{', '.join(f'{n}.npz' for n in missing)} not found in "
                f"{', '.join(map(str, dirs))} (data_dir, ${datasets.ENV_VAR})."
            )
        return
    try:
        for name in names:
            datasets.load(name)
    except datasets.DataNotFoundError as err:
        raise ConfigError(str(err)) from None


def publish_weights(profile: str, experiments, notebook_params: dict, overrides: dict) -> list:
    """Copy each experiment's cached base classifier (byte for byte) to ``weights/``; list them."""
    written = []
    for exp in experiments:
        cfg = configure(exp, profile, overrides=overrides, **notebook_params)
        written.append(config.published_weights_dir(profile, exp))
        params = cfg.stage_params("base_model")
        for name in ("base_model", "base_model_history"):
            artifacts.copy(cfg.artifacts_dir, written[-1], name, params=params)
    return written


def record_build(root: Path, args, seconds: dict, times: dict) -> dict:
    """Append this build's wall times and machine to ``_build/build_times.jsonl``; return it."""
    cpu = hardware.cpu_info()
    record = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "profile": args.profile,
        "experiments": args.experiment, "retrain": bool(args.force or args.retrain),
        "notebooks_executed": sum(len(t) for t in times.values()),
        "notebook_seconds": {e: round(sum(t.values()), 1) for e, t in times.items()},
        **{k: round(v, 1) for k, v in seconds.items()},
        "cpu": cpu["model"], "isa": cpu["isa"], "cores": os.cpu_count(),
    }
    path = root / "_build" / "build_times.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def _validate(args) -> tuple[list, dict, dict]:
    """Check every option before any work: (experiments, notebook parameters, overrides)."""
    if args.experiment != "all" and args.experiment not in EXPERIMENTS:
        raise ConfigError(
            f"--experiment must be one of {', '.join(EXPERIMENTS)} or all; got {args.experiment!r}."
        )
    experiments = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    notebook_params, overrides = _split_parameters(args.parameter)
    notebook_params |= {k: v for k in ("data_dir", "artifacts_dir") if (v := getattr(args, k))}
    for exp in experiments:
        configure(exp, args.profile, overrides=overrides, **notebook_params)
    if args.repository_url:
        args.repository_url = check_repository_url(args.repository_url)
    check_tools(html=not args.no_html)
    if not args.html_only:
        check_data(notebook_params.get("data_dir"))
    return experiments, notebook_params, overrides


def main(argv=None) -> int:
    """Entry point of ``python -m introspection``."""
    args = _parser().parse_args(argv)
    root = repo_root()
    try:
        experiments, notebook_params, overrides = _validate(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    t_all, times = time.perf_counter(), {}
    results = root / "book" / "results" / args.profile
    if not args.html_only:
        retrain = args.force or args.retrain
        for exp in experiments:
            times[exp] = run_notebooks(
                args.profile, exp, notebook_params, overrides, root, args.force, retrain
            )
        # Then the summary, when anything changed.
        book, target = root / "book", results / f"{SUMMARY}.ipynb"
        params = {"profile": args.profile, "results_root": str(results.relative_to(root))}
        if retrain or any(times.values()) or not is_current(target, book / f"{SUMMARY}.py", params):
            _execute(book / f"{SUMMARY}.ipynb", target, params, root)
        ran = sum(len(t) for t in times.values())
        print(f"{ran} notebook(s) executed, the others up to date", flush=True)
    built = [e for e in EXPERIMENTS if (results / e / f"{PAPER_CHAPTERS[-1]}.ipynb").is_file()]
    t_notebooks = time.perf_counter() - t_all
    print(f"notebooks: {t_notebooks:.1f} s", flush=True)
    if args.no_html:
        record_build(root, args, {"notebooks": t_notebooks, "total": t_notebooks}, times)
        return 0
    if args.publish:
        if not args.html_only:
            for folder in publish_weights(args.profile, experiments, notebook_params, overrides):
                print(f"published weights: {folder.relative_to(root)}", flush=True)
        write_run_page(root)
    toc = write_toc(args.profile, built, root, path=root / "_toc.yml" if args.publish else None)
    index = build_html(toc, root, repository_url=args.repository_url)
    total = time.perf_counter() - t_all
    record_build(root, args, {"notebooks": t_notebooks, "total": total}, times)
    print(f"total: {total:.1f} s")
    print(index)
    return 0
