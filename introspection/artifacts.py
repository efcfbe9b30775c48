"""Artifacts: arrays, models and JSON documents saved atomically, each with a manifest.

Artifact ``<name>`` is a data file (``.npz``, ``.keras`` or ``.data.json``) plus a manifest
``<name>.json`` of its parameters, seed, library versions and SHA-256. Writes are atomic,
data file first and manifest last: without a manifest an artifact does not exist. Reads
verify the hash (:class:`CorruptArtifactError`) and, when given, the parameters
(:class:`StaleArtifactError`). Nothing is unpickled. Entry points: ``save_*`` and ``load_*``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["ArtifactError", "ArtifactNotFoundError", "CorruptArtifactError", "StaleArtifactError",
           "library_versions", "canonical_params", "file_sha256", "save_arrays", "load_arrays",
           "save_model", "load_model", "save_json", "load_json", "read_manifest", "names", "exists",
           "copy", "remove", "atomic_write"]  # fmt: skip

_SUFFIX = {"arrays": ".npz", "model": ".keras", "json": ".data.json"}
_LIBRARIES = ("introspection", "numpy", "tensorflow-cpu", "tensorflow", "keras", "scikit-learn",
              "cleverhans")  # fmt: skip


class ArtifactError(Exception):
    """Base class of artifact problems."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """No complete artifact (data file and manifest) of that name exists."""


class CorruptArtifactError(ArtifactError):
    """The data file does not match the hash recorded in its manifest."""


class StaleArtifactError(ArtifactError):
    """The artifact was produced with other parameters than the ones expected."""


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the results (missing ones left out)."""
    versions = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[lib] = metadata.version(lib)
    return versions


def _to_jsonable(obj):
    if isinstance(obj, (np.ndarray, np.generic)):
        obj = obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    kind = type(obj).__name__
    raise TypeError(f"Cannot record a parameter of type {kind} in a manifest: {obj!r}")


def canonical_params(params: Mapping | None) -> dict:
    """Parameters as plain JSON types (tuples become lists, numpy scalars Python ones)."""
    return json.loads(json.dumps(_to_jsonable(dict(params or {})), sort_keys=True))


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, as a hex string."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _paths(root, name: str, kind: str | None = None) -> tuple[Path, Path]:
    """The data file (of a ``kind``) and the manifest of artifact ``name``."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"Artifact names are non-empty file names without '/', got {name!r}.")
    return Path(root) / f"{name}{_SUFFIX.get(kind, '')}", Path(root) / f"{name}.json"


def atomic_write(path: Path, write) -> None:
    """Write through ``write(tmp_path)`` then rename onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        suffix=f".tmp{path.suffix}", prefix=f".{path.name}.", dir=path.parent
    )
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_manifest(path: Path, manifest: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(manifest, indent=2, sort_keys=True)))


def _save(root, name: str, kind: str, write, params, seed, **extra) -> dict:
    """Write an artifact's data file through ``write(tmp_path)``, then its manifest (returned)."""
    data_path, manifest_path = _paths(root, name, kind)
    atomic_write(data_path, write)
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    manifest = {"name": name, "kind": kind, "file": data_path.name,
                "sha256": file_sha256(data_path), "bytes": data_path.stat().st_size,
                "params": canonical_params(params), "seed": seed, "versions": library_versions(),
                "created": created, **extra}  # fmt: skip
    _write_manifest(manifest_path, manifest)
    return manifest


def read_manifest(root, name: str) -> dict:
    """An artifact's manifest (or ArtifactNotFoundError, or CorruptArtifactError if invalid)."""
    path = _paths(root, name)[1]
    if not path.is_file():
        raise ArtifactNotFoundError(f"No artifact {name!r} in {root}.")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptArtifactError(f"Manifest {path} is not valid JSON ({err}).") from err
    if not isinstance(manifest, dict) or manifest.get("kind") not in _SUFFIX:
        raise CorruptArtifactError(f"Manifest {path} does not describe an artifact.")
    return manifest


def _verified(root, name: str, kind: str | None, params) -> tuple[Path, dict]:
    """The data file and manifest of an artifact checked against both (``kind`` None: any)."""
    manifest = read_manifest(root, name)
    if kind not in (None, manifest["kind"]):
        raise ArtifactError(f"Artifact {name!r} holds {manifest['kind']}, not {kind}.")
    data = _paths(root, name, manifest["kind"])[0]
    if not data.is_file():
        raise ArtifactNotFoundError(f"Artifact {name!r}: manifest found but {data} is missing.")
    digest, recorded = file_sha256(data), str(manifest.get("sha256"))
    if digest != manifest.get("sha256"):
        raise CorruptArtifactError(
            f"Artifact {name!r}: {data} does not match its manifest (sha256 {digest[:12]}… "
            f"instead of {recorded[:12]}…); it was altered or truncated. Delete it to recompute it."
        )
    expected = canonical_params(params)
    if params is not None and manifest.get("params") != expected:
        stored = manifest.get("params", {})
        changed = sorted(k for k in {*expected, *stored} if expected.get(k) != stored.get(k))
        raise StaleArtifactError(
            f"Artifact {name!r} was made with other parameters (differing: {', '.join(changed)})."
        )
    return data, manifest


def names(root, pattern: str = "*") -> list[str]:
    """Sorted names of the artifacts matching a glob ``pattern`` (unverified: :func:`exists`)."""
    manifests = [p.name for p in Path(root).glob(f"{pattern}.json")]
    return sorted(m[: -len(".json")] for m in manifests if not m.endswith(_SUFFIX["json"]))


def exists(root, name: str, params: Mapping | None = None) -> bool:
    """Whether a complete, uncorrupted artifact exists (with these ``params``, if given)."""
    with contextlib.suppress(ArtifactError):
        return bool(_verified(root, name, None, params))
    return False


def save_arrays(root, name: str, arrays: Mapping[str, np.ndarray], *, params=None, seed=None):
    """Save named arrays (no object arrays: no pickle) as ``<root>/<name>.npz``; its manifest."""
    data = {str(key): np.asarray(value) for key, value in arrays.items()}
    if objects := [key for key, a in data.items() if a.dtype == object]:
        raise ValueError(f"Array {objects[0]!r} has dtype object; only plain arrays can be saved.")
    shapes = {k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in data.items()}
    return _save(root, name, "arrays", lambda p: np.savez(p, **data), params, seed, arrays=shapes)


def load_arrays(root, name: str, *, params: Mapping | None = None) -> dict[str, np.ndarray]:
    """Load arrays saved by :func:`save_arrays`, verifying hash and ``params`` (if given)."""
    with np.load(_verified(root, name, "arrays", params)[0], allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_model(root, name: str, model, *, params=None, seed=None) -> dict:
    """Save a Keras model as ``<root>/<name>.keras``, atomically, with a manifest (returned)."""
    from .models import save_model as save

    return _save(root, name, "model", lambda p: save(model, p), params, seed, model_name=model.name)


def load_model(root, name: str, *, params: Mapping | None = None, compile: bool = False):
    """Load a model saved by :func:`save_model` in safe mode, verifying hash and ``params``."""
    from . import models

    return models.load_model(_verified(root, name, "model", params)[0], compile=compile)


def save_json(root, name: str, obj, *, params=None, seed=None) -> dict:
    """Save a JSON document (e.g. a training history), atomically, with a manifest (returned)."""
    text = json.dumps(_to_jsonable(obj), indent=1, sort_keys=True)
    return _save(root, name, "json", lambda p: p.write_text(text), params, seed)


def load_json(root, name: str, *, params: Mapping | None = None):
    """Load a document saved by :func:`save_json`, verifying hash and ``params``."""
    return json.loads(_verified(root, name, "json", params)[0].read_text())


def copy(src_root, dst_root, name: str, *, params: Mapping | None = None) -> dict:
    """Copy a verified artifact byte for byte to ``dst_root``, manifest last; its manifest."""
    data_src, manifest = _verified(src_root, name, None, params)
    data_dst, manifest_dst = _paths(dst_root, name, manifest["kind"])
    atomic_write(data_dst, lambda p: shutil.copyfile(data_src, p))
    _write_manifest(manifest_dst, manifest)
    return manifest


def remove(root, name: str) -> None:
    """Delete an artifact, manifest first (then it no longer exists); a missing one is no error."""
    for path in (_paths(root, name)[1], *(Path(root) / f"{name}{s}" for s in _SUFFIX.values())):
        path.unlink(missing_ok=True)
