"""util.cpu: native bfloat16 from /proc/cpuinfo text, and what --precision auto picks."""

from tfcyclegan.util import cpu

# Abridged /proc/cpuinfo of the two machines this project ran on: two processors each,
# the first block is what counts.
ZEN3 = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 1
model name	: AMD EPYC 7B13
flags		: fpu sse sse2 avx avx2 fma bmi2 sha_ni vaes vpclmulqdq

processor	: 1
model name	: AMD EPYC 7B13
flags		: fpu sse sse2 avx avx2 fma bmi2 sha_ni vaes vpclmulqdq
"""
SAPPHIRE_RAPIDS = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Processor
flags		: fpu sse avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8

processor	: 1
model name	: Intel(R) Xeon(R) Processor
flags		: fpu sse avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
COOPER_LAKE = SAPPHIRE_RAPIDS.replace(" amx_bf16 amx_tile amx_int8", "")
ARM = "processor	: 0\nBogoMIPS	: 50.00\nFeatures	: fp asimd bf16\n"


def test_native_bfloat16_reads_the_flags_of_the_first_processor():
    assert cpu.native_bfloat16(ZEN3) == ()
    assert cpu.native_bfloat16(SAPPHIRE_RAPIDS) == ("avx512_bf16", "amx_bf16")
    assert cpu.native_bfloat16(COOPER_LAKE) == ("avx512_bf16",)
    # No x86 `flags` line, or no /proc/cpuinfo at all: unknown, not "absent".
    assert cpu.native_bfloat16(ARM) is None and cpu.native_bfloat16(None) is None
    assert cpu.model_name(ZEN3) == "AMD EPYC 7B13" and cpu.model_name(None) == "unknown CPU"


def test_bfloat16_warning_only_where_bfloat16_is_emulated():
    line = cpu.bfloat16_warning(ZEN3)
    assert line.startswith("warning: this CPU (AMD EPYC 7B13) has neither avx512_bf16 nor amx_bf16")
    assert "several times slower than float32" in line and "\n" not in line
    assert cpu.bfloat16_warning(SAPPHIRE_RAPIDS) is None and cpu.bfloat16_warning(COOPER_LAKE) is None
    assert cpu.bfloat16_warning(ARM) is None


def test_auto_picks_bfloat16_where_the_hardware_has_it():
    assert cpu.choose_precision(SAPPHIRE_RAPIDS)[0] == "mixed_bfloat16"
    assert cpu.choose_precision(ZEN3) == ("float32", "AMD EPYC 7B13 has neither avx512_bf16 nor amx_bf16")
    assert cpu.choose_precision(None)[0] == "float32"
    # GPUs decide when there are any: Ampere (8.0) on has bfloat16, Volta (7.0) has not.
    assert cpu.choose_precision(ZEN3, [(8, 0), (9, 0)])[0] == "mixed_bfloat16"
    assert cpu.choose_precision(SAPPHIRE_RAPIDS, [(8, 6), (7, 0)])[0] == "float32"


def test_read_cpuinfo_of_a_missing_file_is_none(tmp_path):
    assert cpu.read_cpuinfo(tmp_path / "none") is None
    (tmp_path / "cpuinfo").write_text(ZEN3)
    assert cpu.read_cpuinfo(tmp_path / "cpuinfo") == ZEN3


def test_describe_names_the_model_and_the_features_a_number_needs():
    assert cpu.describe(SAPPHIRE_RAPIDS) == (
        "CPU: Intel(R) Xeon(R) Processor; vector units: avx2, avx512f; native bfloat16: avx512_bf16, amx_bf16"
    )
    assert cpu.describe(ZEN3).startswith("CPU: AMD EPYC 7B13; vector units: avx2; native bfloat16: none of")
    assert "unknown" in cpu.describe(None)
