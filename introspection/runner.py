"""Running a stage once: cache, load or compute, save and time it (every stage uses it).

:func:`run_stage` loads a stage's artifacts when their key
(:meth:`introspection.config.Config.stage_params`) is unchanged and otherwise computes and
saves them; :func:`record_stage` keeps each stage's compute time for the book's run page.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import artifacts, hardware
from .config import STAGES, Config

__all__ = ["StageRun", "params_digest", "record_stage", "load_artifact", "save_artifact",
           "run_stage", "progress_bar", "write_table", "write_summary", "record_timing",
           "stage_timings"]  # fmt: skip


@dataclass
class StageRun:
    """How a stage was obtained: computed now or reused from artifacts, and its time."""

    stage: str
    reused: bool
    seconds: float
    compute_seconds: float

    def line(self) -> str:
        """One-line summary for the notebook."""
        how = "reused from artifacts" if self.reused else "computed"
        extra = f" (computing it took {self.compute_seconds:.1f} s)" if self.reused else ""
        return f"{self.stage}: {how} in {self.seconds:.1f} s{extra}"


def params_digest(params: dict) -> str:
    """Short hash of a stage's parameters, naming its scratch folders."""
    text = json.dumps(artifacts.canonical_params(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _save_seconds(cfg: Config, stage: str, seconds: float, part: str | None = None) -> None:
    """Keep a stage's compute time (or one ``part``'s) as an artifact of the stage's key."""
    name = f"timing_{stage}" + (f"__{part}" if part else "")
    artifacts.save_json(cfg.artifacts_dir, name, {"compute_seconds": seconds},
                        params=cfg.stage_params(stage), seed=cfg.seed)  # fmt: skip


def _publish_seconds(cfg: Config, stage: str, seconds: float) -> None:
    """Record a stage's compute time in ``<results_dir>/stage_seconds.json`` (atomic)."""
    path = cfg.results_dir / "stage_seconds.json"
    current = {}
    with contextlib.suppress(OSError, ValueError):
        current = json.loads(path.read_text())
    current = {**(current if isinstance(current, dict) else {}), stage: round(float(seconds), 1)}
    text = json.dumps(current, indent=1, sort_keys=True)
    artifacts.atomic_write(path, lambda tmp: tmp.write_text(text))


def record_stage(cfg: Config, stage: str, t0: float, reused: bool,
                 at_least: float | None = None) -> StageRun:  # fmt: skip
    """Record a stage's compute time (kept from its first run when ``reused``); its StageRun."""
    seconds = time.perf_counter() - t0
    name, params = f"timing_{stage}", cfg.stage_params(stage)
    stored = None
    if reused and artifacts.exists(cfg.artifacts_dir, name, params):
        stored = artifacts.load_json(cfg.artifacts_dir, name)["compute_seconds"]
    compute = seconds if stored is None else stored
    if at_least is not None:  # e.g. the epochs of a training resumed after a kill
        compute = max(compute, float(at_least))
    if compute != stored:  # the record read by stage_timings holds the same figure
        _save_seconds(cfg, stage, compute)
    _publish_seconds(cfg, stage, compute)
    return StageRun(stage, reused, seconds, compute)


def load_artifact(cfg: Config, name: str, store: str, params: dict):
    """An artifact as :func:`run_stage` stores it (``scores``: ``{dataset: {method: array}}``)."""
    kind = "arrays" if store == "scores" else store
    value = getattr(artifacts, f"load_{kind}")(cfg.artifacts_dir, name, params=params)
    if store != "scores":
        return value
    out: dict = {}
    for key, v in value.items():
        d, m = key.split("__", 1)
        out.setdefault(d, {})[m] = v
    return out


def save_artifact(cfg: Config, name: str, store: str, value, params: dict) -> None:
    """Save ``value`` as :func:`load_artifact` reads it."""
    if store == "scores":
        value = {f"{d}__{m}": np.asarray(v) for d, per in value.items() for m, v in per.items()}
    kind = "arrays" if store == "scores" else store
    getattr(artifacts, f"save_{kind}")(cfg.artifacts_dir, name, value, params=params, seed=cfg.seed)


def run_stage(cfg: Config, stage: str, name: str | dict, compute, store: str = "json",
              params: dict | None = None, record: bool = True) -> tuple:  # fmt: skip
    """Load a stage's artifact, or compute it and save it; return ``(value, StageRun)``.

    Parameters
    ----------
    name : str or dict
        The artifact, or ``{artifact: store}`` for several, returned by ``compute()`` as a dict.
    store : {"json", "arrays", "scores", "model"}
        JSON, a dict of arrays, ``{dataset: {method: scores}}`` or a Keras model.
    params : dict, optional
        The artifact's key (default ``cfg.stage_params(stage)``).
    record : bool
        Record the stage's compute time; otherwise the timing is only this call's.
    """
    t0 = time.perf_counter()
    params = cfg.stage_params(stage) if params is None else params
    names = name if isinstance(name, dict) else {name: store}
    reused = all(artifacts.exists(cfg.artifacts_dir, n, params) for n in names)
    if reused:
        value = {n: load_artifact(cfg, n, st, params) for n, st in names.items()}
    else:
        value = compute() if isinstance(name, dict) else {name: compute()}
        for n, st in names.items():
            save_artifact(cfg, n, st, value[n], params)
    value = value if isinstance(name, dict) else value[name]
    if record:
        return value, record_stage(cfg, stage, t0, reused)
    seconds = time.perf_counter() - t0
    return value, StageRun(stage, reused, seconds, seconds)


def progress_bar(iterable, desc: str, enabled: bool = True):
    """A text progress bar over ``iterable`` (on stderr, which the book leaves out) if enabled."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def write_table(cfg: Config, table, name: str, index: bool = True) -> Path:
    """Write a DataFrame as CSV ``<results_dir>/<name>``, atomically; return its path."""
    path = cfg.results_dir / name
    artifacts.atomic_write(path, lambda tmp: table.to_csv(tmp, index=index, float_format="%.6g"))
    return path


def write_summary(cfg: Config, **entries) -> Path:
    """Write ``<results_dir>/summary.json``: the configuration, versions and ``entries``."""
    cpu = hardware.cpu_info()
    chosen, reason = cfg.precision
    summary = {
        "experiment": cfg.experiment, "profile": cfg.profile, "seed": cfg.seed,
        "parameters": cfg.params, "overrides": cfg.overrides,
        "versions": artifacts.library_versions(),
        "machine": {"cpu": cpu["model"], "isa": cpu["isa"], "cores": os.cpu_count(),
                    "platform": platform.platform()},
        # What this machine would train in; the weights' own is in the ``base_model`` entry.
        "precision": {"parameter": cfg["precision"], "chosen": chosen, "reason": reason},
        **entries,
    }  # fmt: skip
    path = cfg.results_dir / "summary.json"
    text = json.dumps(artifacts.canonical_params(summary), indent=2)
    artifacts.atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def record_timing(cfg: Config, stage: str, seconds: float, part: str | None = None) -> None:
    """Record the wall time of a stage without artifacts (logit analysis, evaluation).

    ``part``: one chapter's share of a stage computed by several; a stage's time sums its parts.
    """
    _save_seconds(cfg, stage, seconds, part)
    _publish_seconds(cfg, stage, _stage_seconds(cfg, stage))


def _stage_seconds(cfg: Config, stage: str) -> float | None:
    """A stage's recorded compute time: the sum of its current parts (None if none)."""
    root, params, name = cfg.artifacts_dir, cfg.stage_params(stage), f"timing_{stage}"
    parts = [name, *artifacts.names(root, f"{name}__*")]
    found = [artifacts.load_json(root, n) for n in parts if artifacts.exists(root, n, params)]
    return float(sum(f["compute_seconds"] for f in found)) if found else None


def stage_timings(cfg: Config) -> dict:
    """Seconds of each stage's last computation (sum of its parts), for stages with a record."""
    return {stage: s for stage in STAGES if (s := _stage_seconds(cfg, stage)) is not None}
