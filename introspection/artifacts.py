"""Artifacts: arrays, models and JSON documents saved atomically, each with a manifest.

Artifact ``<name>`` is a data file (``.npz``, ``.keras`` or ``.data.json``) plus a manifest
``<name>.json`` of its parameters, seed, library versions and SHA-256. Writes are atomic,
data file first and manifest last: without a manifest an artifact does not exist. Reads
verify the hash (:class:`CorruptArtifactError`) and, when given, the parameters
(:class:`StaleArtifactError`). Nothing is unpickled. Entry points: :func:`save_arrays`,
:func:`load_arrays`, :func:`save_model`, :func:`load_model`, :func:`save_json`, :func:`load_json`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["ArtifactError", "ArtifactNotFoundError", "CorruptArtifactError", "StaleArtifactError",
           "library_versions", "canonical_params", "file_sha256", "save_arrays", "load_arrays",
           "save_model", "load_model", "save_json", "load_json", "read_manifest", "names", "exists",
           "copy", "remove", "atomic_write"]

_SUFFIX = {"arrays": ".npz", "model": ".keras", "json": ".data.json"}
_LIBRARIES = ("introspection", "numpy", "tensorflow-cpu", "tensorflow", "keras", "scikit-learn",
              "cleverhans")


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
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _to_jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
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


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"Artifact names are non-empty file names without '/', got {name!r}.")
    return name


def _paths(root, name: str, kind: str) -> tuple[Path, Path]:
    """The data file and the manifest of artifact ``name``."""
    return Path(root) / f"{_check_name(name)}{_SUFFIX[kind]}", Path(root) / f"{name}.json"


def atomic_write(path: Path, write) -> None:
    """Write through ``write(tmp_path)`` then rename onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_json(path: Path, obj, indent: int) -> None:
    text = json.dumps(obj, indent=indent, sort_keys=True)
    atomic_write(path, lambda p: p.write_text(text))


def _write_manifest(root, name: str, kind: str, params, seed, extra: dict) -> dict:
    data_path, manifest_path = _paths(root, name, kind)
    manifest = {"name": name, "kind": kind, "file": data_path.name,
                "sha256": file_sha256(data_path), "bytes": data_path.stat().st_size,
                "params": canonical_params(params), "seed": seed, "versions": library_versions(),
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), **extra}
    _write_json(manifest_path, manifest, indent=2)
    return manifest


def read_manifest(root, name: str) -> dict:
    """The manifest of an artifact.

    Raises :class:`ArtifactNotFoundError` without one, :class:`CorruptArtifactError` if invalid.
    """
    path = Path(root) / f"{_check_name(name)}.json"
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
    kind = manifest["kind"] if kind is None else kind
    if manifest["kind"] != kind:
        raise ArtifactError(f"Artifact {name!r} holds {manifest['kind']}, not {kind}.")
    data_path, _ = _paths(root, name, kind)
    if not data_path.is_file():
        raise ArtifactNotFoundError(
            f"Artifact {name!r}: manifest found but {data_path} is missing."
        )
    digest = file_sha256(data_path)
    if digest != manifest.get("sha256"):
        raise CorruptArtifactError(
            f"Artifact {name!r}: {data_path} does not match its manifest (sha256 {digest[:12]}… "
            f"instead of {str(manifest.get('sha256'))[:12]}…); it was altered or truncated. "
            "Delete it to recompute it."
        )
    if params is not None:
        expected = canonical_params(params)
        if manifest.get("params") != expected:
            stored = manifest.get("params", {})
            changed = sorted(k for k in {*expected, *stored} if expected.get(k) != stored.get(k))
            raise StaleArtifactError(f"Artifact {name!r} was made with other parameters "
                                     f"(differing: {', '.join(changed)}).")
    return data_path, manifest


def names(root, pattern: str = "*") -> list[str]:
    """Sorted names of the artifacts under ``root`` whose name matches a glob ``pattern``.

    Only manifests are looked at: use :func:`exists` to verify the artifacts.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    manifests = [p.name for p in root.glob(f"{pattern}.json")]
    return sorted(m[: -len(".json")] for m in manifests if not m.endswith(_SUFFIX["json"]))


def exists(root, name: str, params: Mapping | None = None) -> bool:
    """Whether a complete, uncorrupted artifact exists (with these ``params``, if given)."""
    try:
        _verified(root, name, None, params)
    except ArtifactError:
        return False
    return True


def save_arrays(
    root, name: str, arrays: Mapping[str, np.ndarray], *, params=None, seed=None
) -> dict:
    """Save named arrays as ``<root>/<name>.npz``, atomically, with a manifest (returned).

    Object arrays are refused (they would need pickle); ``params`` and ``seed`` are recorded.
    """
    data = {}
    for key, value in arrays.items():
        a = np.asarray(value)
        if a.dtype == object:
            raise ValueError(f"Array {key!r} has dtype object; only plain arrays can be saved.")
        data[str(key)] = a
    data_path, _ = _paths(root, name, "arrays")

    def write(tmp: Path):
        with open(tmp, "wb") as f:
            np.savez(f, **data)

    atomic_write(data_path, write)
    shapes = {k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in data.items()}
    return _write_manifest(root, name, "arrays", params, seed, {"arrays": shapes})


def load_arrays(root, name: str, *, params: Mapping | None = None) -> dict[str, np.ndarray]:
    """Load arrays saved by :func:`save_arrays`, verifying hash and ``params`` (if given)."""
    data_path, _ = _verified(root, name, "arrays", params)
    with np.load(data_path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_model(root, name: str, model, *, params=None, seed=None) -> dict:
    """Save a Keras model as ``<root>/<name>.keras``, atomically, with a manifest (returned)."""
    from .models import save_model as _save

    data_path, _ = _paths(root, name, "model")
    _save(model, data_path)  # itself atomic
    return _write_manifest(root, name, "model", params, seed, {"model_name": model.name})


def load_model(root, name: str, *, params: Mapping | None = None, compile: bool = False):
    """Load a model saved by :func:`save_model` in safe mode, verifying hash and ``params``."""
    from .models import load_model as _load

    data_path, _ = _verified(root, name, "model", params)
    return _load(data_path, compile=compile)


def save_json(root, name: str, obj, *, params=None, seed=None) -> dict:
    """Save a JSON document (e.g. a training history), atomically, with a manifest (returned)."""
    doc = _to_jsonable(obj)
    _write_json(_paths(root, name, "json")[0], doc, indent=1)
    return _write_manifest(root, name, "json", params, seed, {})


def load_json(root, name: str, *, params: Mapping | None = None):
    """Load a document saved by :func:`save_json`, verifying hash and ``params``."""
    data_path, _ = _verified(root, name, "json", params)
    return json.loads(data_path.read_text())


def copy(src_root, dst_root, name: str, *, params: Mapping | None = None) -> dict:
    """Copy a verified artifact byte for byte to ``dst_root``; return its manifest.

    Data file first, manifest last: an interrupted copy leaves no artifact at the destination.
    """
    import shutil

    data_src, manifest = _verified(src_root, name, None, params)
    data_dst, manifest_dst = _paths(dst_root, name, manifest["kind"])
    atomic_write(data_dst, lambda p: shutil.copyfile(data_src, p))
    _write_json(manifest_dst, manifest, indent=2)
    return manifest


def remove(root, name: str) -> None:
    """Delete an artifact, manifest first (then it no longer exists); a missing one is no error."""
    (Path(root) / f"{_check_name(name)}.json").unlink(missing_ok=True)
    for suffix in _SUFFIX.values():
        (Path(root) / f"{name}{suffix}").unlink(missing_ok=True)
