"""The CPU a run is on, and the training precision it computes fastest.

Measured with ``benchmarks/training_efficiency.py`` (one WRN-16-2 step), mixed bfloat16
is ~2x faster than float32 with AMX, 2.7x with AVX-512 BF16, and ~8x slower with AVX2
only (oneDNN emulates it). So ``precision="auto"`` takes it exactly when the CPU flags
list ``amx_bf16`` or ``avx512_bf16``; float32 elsewhere, or where flags are unreadable.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["BF16_FLAGS", "cpu_info", "choose_precision", "import_tensorflow"]

#: What TensorFlow writes to stderr on import, whatever ``TF_CPP_MIN_LOG_LEVEL`` says
#: (TF 2.20: absl's preamble, oneDNN's notice, the CPU-feature notice).
TF_START_LINES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)


def import_tensorflow():
    """Import TensorFlow without its start-up lines (:data:`TF_START_LINES`) on stderr.

    They go to fd 2, which Jupyter copies into notebooks: fd 2 is redirected during the
    import and other lines are passed on. oneDNN stays on (disabling it costs 1.3-1.6x).
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
    kept = [line for line in text.splitlines() if not any(s in line for s in TF_START_LINES)]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
    return tensorflow


#: CPU flags (``/proc/cpuinfo`` spelling) of native bfloat16 arithmetic.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_X86 = ("x86_64", "amd64", "i686", "i386")
# The instruction sets cpu_info names, widest first, and the flag that shows each.
_ISAS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"),
         ("avx2", "AVX2"))


def _linux_cpuinfo(path: Path) -> tuple[str, set[str]] | None:
    try:
        lines = [line.partition(":") for line in path.read_text().splitlines()]
    except OSError:
        return None
    found = [(key.strip().lower(), value.strip()) for key, _, value in lines if value.strip()]
    model = next((v for k, v in found if k == "model name"), "")
    # The first non-empty line of each: "flags" on x86, "features" on ARM.
    flags = next((set(v.split()) for k, v in found if k in ("flags", "features")), set())
    return model, flags


def _sysctl(name: str) -> str:
    try:
        out = subprocess.run(
            ["/usr/sbin/sysctl", "-n", name], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _onednn_allows_bf16(cap: str) -> bool:
    """Whether oneDNN's ISA cap (``ONEDNN_MAX_CPU_ISA``) leaves native bfloat16 in use."""
    cap = cap.strip().upper()
    bf16 = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10")
    return cap in ("", "ALL", "DEFAULT") or cap.startswith(bf16)


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo", system: str | None = None,
             machine: str | None = None) -> dict:
    """What this CPU is and which vector and matrix instructions it has.

    Returns ``model``, ``machine``, ``isa`` (widest of AMX, AVX-512 BF16, AVX-512, AVX2; else
    the architecture or ``"unknown"``), ``bf16``, ``flags``, ``source`` (``None``: unreadable).
    If ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below bfloat16, ``bf16`` is False, ``isa`` says so.
    """
    system = platform.system() if system is None else system
    machine = (platform.machine() if machine is None else machine).lower()
    read, source = None, None
    if system == "Linux":
        read, source = _linux_cpuinfo(Path(cpuinfo)), str(cpuinfo)
    elif system == "Darwin" and (brand := _sysctl("machdep.cpu.brand_string")):
        # Intel Macs list their features in capitals (AVX2, AVX512F ...); Apple silicon none.
        names = f"{_sysctl('machdep.cpu.features')} {_sysctl('machdep.cpu.leaf7_features')}"
        read, source = (brand, {f.lower().replace(".", "_") for f in names.split()}), "sysctl"
    model, flags = read or (platform.processor() or "unknown", set())
    isa, bf16 = machine or "unknown", False
    if machine in _X86:
        isa = next((isa for flag, isa in _ISAS if flag in flags), "x86-64" if flags else "unknown")
        bf16 = any(f in flags for f in BF16_FLAGS)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    if bf16 and not _onednn_allows_bf16(cap):
        isa, bf16 = f"{isa}, oneDNN capped at {cap.strip().upper()}", False
    wanted = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma")
    return {"model": model or "unknown", "machine": machine, "isa": isa, "bf16": bf16,
            "flags": sorted(f for f in wanted if f in flags), "source": source if read else None}


def choose_precision(requested: str = "auto", info: dict | None = None) -> tuple[str, str]:
    """The training precision of the base classifier, and the reason in one clause.

    ``requested``: ``"auto"`` decides by the hardware (module docstring); ``"float32"`` and
    ``"mixed_bfloat16"`` are kept. ``info``: a :func:`cpu_info` result, default this machine's.

    Examples
    --------
    >>> choose_precision("auto", {"model": "Some CPU", "isa": "AVX2", "bf16": False})
    ('float32', 'auto: Some CPU has AVX2, without native bfloat16 (neither AMX nor AVX-512 BF16)')
    """
    if requested not in ("auto", "float32", "mixed_bfloat16"):
        raise ValueError(
            f"Unknown precision {requested!r}; expected 'auto', 'float32' or 'mixed_bfloat16'."
        )
    if requested != "auto":
        return requested, f"set explicitly to {requested}"
    info = cpu_info() if info is None else info
    if not info["bf16"] and info.get("source") is None and info["isa"] == "unknown":
        return "float32", "auto: the CPU's instruction sets could not be read"
    has = f"auto: {info['model']} has {info['isa']}"
    if info["bf16"]:
        return "mixed_bfloat16", f"{has}, which computes bfloat16 natively"
    return "float32", f"{has}, without native bfloat16 (neither AMX nor AVX-512 BF16)"
