"""The CPU a run is on, and the training arithmetic it computes fastest.

Mixed bfloat16 training (Keras' ``mixed_bfloat16`` policy) pays only where the CPU
computes bfloat16 in hardware. Measured with ``benchmarks/training_efficiency.py``
(one WRN-16-2 training step, 2 cores): about 2x *faster* than float32 with AMX
(Intel Xeon), 2.7x faster with AVX-512 BF16 and no AMX (AMD EPYC, Zen 4), and
about 8x *slower* with AVX2 only (no bfloat16 instructions: oneDNN emulates it).
So ``precision="auto"`` chooses mixed bfloat16 exactly when the CPU's flags list
``amx_bf16`` or ``avx512_bf16``, and float32 everywhere else, including wherever
the flags cannot be read (macOS on Apple silicon, Windows, ARM).
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
    """Import TensorFlow without its start-up lines on stderr.

    The native libraries write :data:`TF_START_LINES` straight to file descriptor 2,
    which Jupyter kernels copy into the notebook. During the import, descriptor 2
    goes to a temporary file; what else was written there is passed on to
    ``sys.stderr``. oneDNN stays on (disabling it costs 1.3-1.6x here).

    Returns
    -------
    module
        ``tensorflow``.
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


def _linux_cpuinfo(path: Path) -> tuple[str, set[str]] | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:  # x86 / ARM spelling
            flags = set(value.split())
    return model, flags


def _macos_sysctl() -> tuple[str, set[str]] | None:
    def sysctl(name):
        try:
            out = subprocess.run(
                ["/usr/sbin/sysctl", "-n", name], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    model = sysctl("machdep.cpu.brand_string")
    if not model:
        return None
    # Intel Macs list their features in capitals (AVX2, AVX512F ...); Apple silicon none.
    names = f"{sysctl('machdep.cpu.features')} {sysctl('machdep.cpu.leaf7_features')}"
    return model, {f.lower().replace(".", "_") for f in names.split()}


def _isa(machine: str, flags: set[str]) -> str:
    if machine not in ("x86_64", "amd64", "i686", "i386"):
        return machine or "unknown"
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    return "x86-64" if flags else "unknown"


def _onednn_allows_bf16(cap: str) -> bool:
    """Whether oneDNN's ISA cap (``ONEDNN_MAX_CPU_ISA``) leaves native bfloat16 in use."""
    cap = cap.strip().upper()
    if cap in ("", "ALL", "DEFAULT"):
        return True
    return cap.startswith(("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10"))


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo", system: str | None = None,
             machine: str | None = None) -> dict:
    """What this CPU is and which vector and matrix instructions it has.

    Parameters
    ----------
    cpuinfo : str or path-like
        Linux's CPU description (a test passes a file of its own).
    system, machine : str, optional
        ``platform.system()`` and ``platform.machine()`` (by default this machine's).

    Returns
    -------
    dict
        ``model`` (e.g. ``"AMD EPYC"``), ``machine`` (``"x86_64"``, ``"arm64"``...),
        ``isa`` (the widest of ``"AMX"``, ``"AVX-512 BF16"``, ``"AVX-512"``,
        ``"AVX2"``; else the architecture, or ``"unknown"``), ``bf16`` (whether a flag
        of :data:`BF16_FLAGS` is present), ``flags`` (the relevant flags present,
        sorted) and ``source`` (where it was read: ``"/proc/cpuinfo"``, ``"sysctl"``
        or ``None`` when nothing could be read). When oneDNN is capped below its
        bfloat16 instructions (``ONEDNN_MAX_CPU_ISA``, e.g. ``AVX2``, as one emulates
        an older CPU), ``bf16`` is False and ``isa`` names the cap.
    """
    system = platform.system() if system is None else system
    machine = (platform.machine() if machine is None else machine).lower()
    read, source = None, None
    if system == "Linux":
        read, source = _linux_cpuinfo(Path(cpuinfo)), str(cpuinfo)
    elif system == "Darwin":
        read, source = _macos_sysctl(), "sysctl"
    if read is None:
        read, source = (platform.processor() or "unknown", set()), None
    model, flags = read
    x86 = machine in ("x86_64", "amd64", "i686", "i386")
    wanted = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma")
    isa, bf16 = _isa(machine, flags), x86 and any(f in flags for f in BF16_FLAGS)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    if bf16 and not _onednn_allows_bf16(cap):
        isa, bf16 = f"{isa}, oneDNN capped at {cap.strip().upper()}", False
    return {
        "model": model or "unknown",
        "machine": machine,
        "isa": isa,
        "bf16": bf16,
        "flags": sorted(f for f in wanted if f in flags),
        "source": source,
    }


def choose_precision(requested: str = "auto", info: dict | None = None) -> tuple[str, str]:
    """The training arithmetic of the base classifier, and why.

    Parameters
    ----------
    requested : {"auto", "float32", "mixed_bfloat16"}
        ``"auto"`` chooses by the hardware (module docstring); the others are kept.
    info : dict, optional
        From :func:`cpu_info` (default: this machine's).

    Returns
    -------
    precision : {"float32", "mixed_bfloat16"}
    reason : str
        One clause, e.g. ``"auto: AMD EPYC has AVX-512 BF16, which computes bfloat16
        natively"``.

    Examples
    --------
    >>> info = {"model": "Some CPU", "isa": "AVX2", "bf16": False}
    >>> choose_precision("auto", info)
    ('float32', 'auto: Some CPU has AVX2, without native bfloat16 (neither AMX nor AVX-512 BF16)')
    >>> choose_precision("mixed_bfloat16", info)[0]
    'mixed_bfloat16'
    """
    if requested not in ("auto", "float32", "mixed_bfloat16"):
        raise ValueError(
            f"Unknown precision {requested!r}; expected 'auto', 'float32' or 'mixed_bfloat16'."
        )
    if requested != "auto":
        return requested, f"set explicitly to {requested}"
    info = cpu_info() if info is None else info
    if info["bf16"]:
        return "mixed_bfloat16", (
            f"auto: {info['model']} has {info['isa']}, which computes bfloat16 natively"
        )
    if info.get("source") is None and info["isa"] == "unknown":
        return "float32", "auto: the CPU's instruction sets could not be read"
    return "float32", (
        f"auto: {info['model']} has {info['isa']}, without native bfloat16 "
        "(neither AMX nor AVX-512 BF16)"
    )
