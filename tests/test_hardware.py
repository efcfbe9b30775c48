"""The training precision is chosen by the CPU's flags, and float32 when they are unknown."""

import pytest

from introspection import config, hardware

# Flag lines as /proc/cpuinfo prints them on the three kinds of machine measured
# (benchmarks/training_efficiency.py: bf16 about 2x faster with AMX, 2.7x faster with
# AVX-512 BF16, 8x slower with AVX2 only), shortened.
CPUINFO = {
    "amx": ("Intel(R) Xeon(R) Platinum 8481C", "fpu sse2 avx avx2 fma avx512f avx512_bf16 "
            "amx_bf16 amx_tile amx_int8"),
    "zen4": ("AMD EPYC", "fpu sse2 avx avx2 fma avx512f avx512dq avx512_bf16 avx512_vnni"),
    "avx2": ("AMD EPYC 7B13", "fpu sse2 avx avx2 fma"),
    "avx512_no_bf16": ("Intel(R) Xeon(R) CPU @ 2.20GHz", "fpu sse2 avx avx2 fma avx512f"),
}


@pytest.fixture(autouse=True)
def no_onednn_cap(monkeypatch):
    """These tests fake the CPU: a oneDNN cap of the machine running them must not count."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


def write_cpuinfo(tmp_path, model, flags, key="flags"):
    path = tmp_path / "cpuinfo"
    block = f"processor\t: 0\nvendor_id\t: x\nmodel name\t: {model}\n{key}\t\t: {flags}\n\n"
    path.write_text(block * 2)
    return path


@pytest.mark.parametrize(
    "kind, isa, precision",
    [
        ("amx", "AMX", "mixed_bfloat16"),
        ("zen4", "AVX-512 BF16", "mixed_bfloat16"),
        ("avx2", "AVX2", "float32"),
        ("avx512_no_bf16", "AVX-512", "float32"),
    ],
)
def test_precision_follows_the_cpu_flags(tmp_path, kind, isa, precision):
    info = hardware.cpu_info(write_cpuinfo(tmp_path, *CPUINFO[kind]), "Linux", "x86_64")
    assert info["model"] == CPUINFO[kind][0] and info["isa"] == isa
    assert info["bf16"] == (precision == "mixed_bfloat16")
    chosen, reason = hardware.choose_precision("auto", info)
    assert chosen == precision and info["model"] in reason and isa in reason


def test_unreadable_or_foreign_hardware_gets_float32(tmp_path):
    # No /proc/cpuinfo (a container without it), an ARM CPU, macOS without sysctl, Windows.
    cases = [
        hardware.cpu_info(tmp_path / "missing", "Linux", "x86_64"),
        hardware.cpu_info(write_cpuinfo(tmp_path, "", "fp asimd bf16", "Features"),
                          "Linux", "aarch64"),
        hardware.cpu_info(tmp_path / "missing", "Windows", "AMD64"),
    ]
    for info in cases:
        assert not info["bf16"]
        assert hardware.choose_precision("auto", info)[0] == "float32"
    assert cases[0]["source"] is None
    assert "could not be read" in hardware.choose_precision("auto", cases[0])[1]
    assert cases[1]["isa"] == "aarch64"


def test_macos_reads_sysctl(monkeypatch):
    out = {
        "machdep.cpu.brand_string": "Apple M2",
        "machdep.cpu.features": "",
        "machdep.cpu.leaf7_features": "",
    }

    class Done:
        def __init__(self, name):
            self.returncode, self.stdout = 0, out.get(name, "")

    monkeypatch.setattr(hardware.subprocess, "run", lambda cmd, **kw: Done(cmd[-1]))
    info = hardware.cpu_info(system="Darwin", machine="arm64")
    assert info["model"] == "Apple M2" and info["source"] == "sysctl" and not info["bf16"]
    assert hardware.choose_precision("auto", info)[0] == "float32"


def test_forced_precision_is_kept_and_bad_values_refused():
    info = {"model": "x", "isa": "AVX2", "bf16": False, "source": "/proc/cpuinfo"}
    assert hardware.choose_precision("mixed_bfloat16", info) == (
        "mixed_bfloat16", "set explicitly to mixed_bfloat16")
    assert hardware.choose_precision("float32", {**info, "bf16": True})[0] == "float32"
    with pytest.raises(ValueError, match="precision"):
        hardware.choose_precision("float16", info)


def test_every_profile_chooses_by_the_hardware(tmp_path, monkeypatch):
    """No profile assumes a CPU: on AVX2 the cpu profile trains in float32."""
    read = hardware.cpu_info
    for kind, expected in (("avx2", "float32"), ("amx", "mixed_bfloat16")):
        fake = read(write_cpuinfo(tmp_path, *CPUINFO[kind]), "Linux", "x86_64")
        monkeypatch.setattr(hardware, "cpu_info", lambda *a, fake=fake: fake)
        for profile in config.PROFILES:
            for exp in config.EXPERIMENTS:
                cfg = config.configure(exp, profile, artifacts_dir=tmp_path / "a",
                                       results_dir=tmp_path / "r")
                assert cfg["precision"] == "auto"
                assert cfg.precision[0] == expected
                # The stage key keeps "auto": weights trained on one CPU are reused on another.
                assert cfg.stage_params("base_model")["precision"] == "auto"
        row = cfg.table("base_model").loc["precision"]
        assert row.value == f"auto → {expected}" and fake["model"] in row.meaning
    forced = config.configure("mnist", "cpu", precision="float32", artifacts_dir=tmp_path / "a",
                              results_dir=tmp_path / "r")
    assert forced.precision == ("float32", "set explicitly to float32")


@pytest.mark.parametrize(
    "cap, precision",
    [("AVX2", "float32"), ("avx512_core", "float32"), ("AVX512_CORE_BF16", "mixed_bfloat16"),
     ("AVX512_CORE_AMX", "mixed_bfloat16"), ("ALL", "mixed_bfloat16")],
)
def test_a_onednn_isa_cap_is_honoured(tmp_path, monkeypatch, cap, precision):
    """ONEDNN_MAX_CPU_ISA=AVX2 emulates an AVX2-only CPU: oneDNN then has no bfloat16."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    info = hardware.cpu_info(write_cpuinfo(tmp_path, *CPUINFO["amx"]), "Linux", "x86_64")
    assert hardware.choose_precision("auto", info)[0] == precision
    assert (cap.upper() in info["isa"]) == (precision == "float32")


def test_tensorflow_imports_without_its_start_up_lines():
    import subprocess
    import sys

    code = (
        "import sys; from introspection.hardware import import_tensorflow; "
        "tf = import_tensorflow(); print(tf.__name__); print('after', file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "tensorflow"
    assert out.stderr.strip() == "after", out.stderr
