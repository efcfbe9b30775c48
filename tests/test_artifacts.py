import json

import numpy as np
import pytest

from introspection import artifacts


def test_arrays_roundtrip_with_manifest(tmp_path):
    arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "names": np.array(["a", "b"])}
    m = artifacts.save_arrays(tmp_path, "gen", arrays, params={"eps": 0.3, "shape": (1, 2)}, seed=7)
    assert m["seed"] == 7 and m["params"] == {"eps": 0.3, "shape": [1, 2]}
    assert m["sha256"] == artifacts.file_sha256(tmp_path / "gen.npz")
    assert m["arrays"]["x"] == {"shape": [3, 4], "dtype": "float32"}
    assert "numpy" in m["versions"] and "python" in m["versions"]
    out = artifacts.load_arrays(tmp_path, "gen", params={"shape": [1, 2], "eps": 0.3})
    np.testing.assert_array_equal(out["x"], arrays["x"])
    np.testing.assert_array_equal(out["names"], arrays["names"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.json", "gen.npz"]


def test_stale_parameters_are_detected(tmp_path):
    artifacts.save_arrays(tmp_path, "gen", {"x": np.zeros(2)}, params={"eps": 0.3})
    assert artifacts.exists(tmp_path, "gen", {"eps": 0.3})
    assert not artifacts.exists(tmp_path, "gen", {"eps": 0.1})
    with pytest.raises(artifacts.StaleArtifactError, match="eps"):
        artifacts.load_arrays(tmp_path, "gen", params={"eps": 0.1})


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_corruption_is_detected(tmp_path, damage):
    artifacts.save_arrays(tmp_path, "gen", {"x": np.arange(1000.0)})
    path = tmp_path / "gen.npz"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-200] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not artifacts.exists(tmp_path, "gen")
    with pytest.raises(artifacts.CorruptArtifactError, match="altered or truncated"):
        artifacts.load_arrays(tmp_path, "gen")


def test_missing_manifest_means_missing_artifact(tmp_path):
    # A run killed between the data file and its manifest leaves no artifact.
    artifacts.save_arrays(tmp_path, "gen", {"x": np.zeros(3)})
    (tmp_path / "gen.json").unlink()
    assert not artifacts.exists(tmp_path, "gen")
    with pytest.raises(artifacts.ArtifactNotFoundError):
        artifacts.load_arrays(tmp_path, "gen")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(artifacts.CorruptArtifactError):
        artifacts.read_manifest(tmp_path, "bad")


def test_failed_write_keeps_previous_version(tmp_path, monkeypatch):
    artifacts.save_arrays(tmp_path, "gen", {"x": np.ones(3)}, params={"v": 1})

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError):
        artifacts.save_arrays(tmp_path, "gen", {"x": np.zeros(3)}, params={"v": 2})
    monkeypatch.undo()
    np.testing.assert_array_equal(artifacts.load_arrays(tmp_path, "gen", params={"v": 1})["x"], 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.json", "gen.npz"]  # no temp files


def test_object_arrays_and_bad_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="object"):
        artifacts.save_arrays(tmp_path, "gen", {"x": np.array([{}, []], dtype=object)})
    for name in ("", "../x", ".hidden"):
        with pytest.raises(ValueError):
            artifacts.save_arrays(tmp_path, name, {"x": np.zeros(1)})
    with pytest.raises(TypeError):
        artifacts.save_arrays(tmp_path, "gen", {"x": np.zeros(1)}, params={"f": object()})


def test_json_and_model_artifacts(tmp_path):
    from introspection import models

    artifacts.save_json(tmp_path, "history", {"loss": np.array([1.0, 0.5])}, params={"epochs": 2})
    assert artifacts.load_json(tmp_path, "history", params={"epochs": 2}) == {"loss": [1.0, 0.5]}
    net = models.introspection_net()
    artifacts.save_model(tmp_path, "net", net, params={"epochs": 2}, seed=0)
    loaded = artifacts.load_model(tmp_path, "net", params={"epochs": 2})
    z = np.random.default_rng(0).normal(size=(5, 10)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(z)), np.asarray(net(z)), atol=1e-6)
    assert json.loads((tmp_path / "net.json").read_text())["kind"] == "model"
    with pytest.raises(artifacts.ArtifactError):
        artifacts.load_arrays(tmp_path, "net")


def test_names_lists_artifacts_not_their_data_files(tmp_path):
    artifacts.save_json(tmp_path, "timing_a", {"s": 1})
    artifacts.save_json(tmp_path, "timing_a__part", {"s": 2})
    artifacts.save_arrays(tmp_path, "timing_b", {"x": np.zeros(2)})
    (tmp_path / "timing_a__orphan.data.json").write_text("{}")  # data without manifest
    assert artifacts.names(tmp_path) == ["timing_a", "timing_a__part", "timing_b"]
    assert artifacts.names(tmp_path, "timing_a__*") == ["timing_a__part"]
    assert artifacts.names(tmp_path / "missing") == []
