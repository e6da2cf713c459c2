"""What this machine's CPU does natively for bfloat16, from the flags Linux reports in /proc/cpuinfo.

oneDNN, which runs TensorFlow's CPU convolutions and matrix products, computes bfloat16
natively with AVX512_BF16 (`avx512_bf16`, Cooper Lake, Sapphire Rapids, AMD Zen 4 on) or
AMX (`amx_bf16`, Sapphire Rapids on); without either it emulates bfloat16 through
float32, and mixed_bfloat16 training ran 6.5x the time of float32 PyTorch where float32
TensorFlow ran 0.92x (AMD EPYC family 25 model 1, Zen 3: docs/benchmarks.md). fit and
the benchmarks use this module to say so before they run.
"""

from pathlib import Path

CPUINFO = "/proc/cpuinfo"
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def _first_processor(cpuinfo):
    """{key: value} of the first processor block of /proc/cpuinfo text."""
    fields = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def read_cpuinfo(path=CPUINFO):
    """The text of /proc/cpuinfo, or None where there is none (not Linux) or it cannot be read."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def flags(cpuinfo):
    """The CPU's feature flags (`flags` line, x86) as a set; empty when the text has none."""
    return set(_first_processor(cpuinfo or "").get("flags", "").split())


def model_name(cpuinfo):
    """The CPU's `model name` as Linux reports it, or "unknown CPU"."""
    return _first_processor(cpuinfo or "").get("model name") or "unknown CPU"


def native_bfloat16(cpuinfo):
    """The flags of BFLOAT16_FLAGS the CPU has (a tuple, empty when it has none), or None
    when `cpuinfo` is None or lists no flags at all (not Linux x86: unknown)."""
    found = flags(cpuinfo)
    if not found:
        return None
    return tuple(flag for flag in BFLOAT16_FLAGS if flag in found)


def bfloat16_warning(cpuinfo):
    """One line saying bfloat16 will be slow on this CPU, or None when it has native
    bfloat16 or its flags are unknown."""
    if native_bfloat16(cpuinfo) != ():
        return None
    return (
        f"warning: this CPU ({model_name(cpuinfo)}) has neither {' nor '.join(BFLOAT16_FLAGS)}, so oneDNN "
        "emulates bfloat16 and mixed_bfloat16 will be several times slower than float32 here; "
        "use --precision float32 (or auto)"
    )


def choose_precision(cpuinfo, gpu_capabilities=()):
    """(precision, why) for `--precision auto`: mixed_bfloat16 where the hardware computes
    bfloat16 natively, float32 otherwise.

    With GPUs (`gpu_capabilities`: their CUDA compute capabilities as (major, minor)),
    bfloat16 when every one is Ampere or later (8.0); without, when the CPU has one of
    BFLOAT16_FLAGS.
    """
    if gpu_capabilities:
        if all(capability and tuple(capability) >= (8, 0) for capability in gpu_capabilities):
            return "mixed_bfloat16", "every GPU computes bfloat16 natively (compute capability 8.0 or later)"
        return "float32", "a GPU older than compute capability 8.0 has no native bfloat16"
    native = native_bfloat16(cpuinfo)
    if native:
        return "mixed_bfloat16", f"{model_name(cpuinfo)} has {' and '.join(native)}"
    if native is None:
        return "float32", "this CPU's features are unknown (no /proc/cpuinfo flags)"
    return "float32", f"{model_name(cpuinfo)} has neither {' nor '.join(BFLOAT16_FLAGS)}"


def describe(cpuinfo):
    """One line for a benchmark's header: the CPU model and the bfloat16 features it has."""
    native = native_bfloat16(cpuinfo)
    if native is None:
        said = "unknown (no /proc/cpuinfo flags)"
    elif native:
        said = ", ".join(native)
    else:
        said = f"none of {', '.join(BFLOAT16_FLAGS)} (oneDNN emulates bfloat16: mixed_bfloat16 runs slow)"
    avx = ", ".join(flag for flag in ("avx2", "avx512f") if flag in flags(cpuinfo)) or "neither avx2 nor avx512f"
    return f"CPU: {model_name(cpuinfo)}; vector units: {avx}; native bfloat16: {said}"
