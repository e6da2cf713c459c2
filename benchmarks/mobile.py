"""What the mobile generator saves: parameters, multiply-adds, TFLite latency, and what distilling costs.

    .venv/bin/python benchmarks/mobile.py [--threads 2] [--repeats 5] [--sizes 256 512]

One run prints four markdown tables:

1. cost: parameters and multiply-adds (tfcyclegan.core.cost) at each size of the
   teachers (ResNet 9 and 6 blocks, ngf 64) and the students (mobile, 9 blocks, ngf
   16, 24, 32), and each one's ratio to the 9-block teacher.
2. TFLite latency: each generator exported as tfcyclegan exports it (random weights;
   latency does not depend on them) in float32, float16, dynamic and int8 (calibrated
   on synthetic images), run with ai-edge-litert at `--threads` threads, batch 1.
   For each quantization and size the generators take turns, `--repeats` rounds after
   a warm-up, so that the load of a shared machine hits all alike; the median per
   image and its ratio to the 9-block teacher's in the same rounds.
3. Distillation step at 256 x 256 (`--step-size`): seconds per `Distiller.train_step`
   (9-block ngf-64 teacher forward included, student ngf 16, no discriminator, and with
   a PatchGAN) beside `CycleGAN.train_step` with 9-block generators, and the share of
   the distillation step the teacher's forward pass takes (what caching teacher outputs
   could save at most); each measured in its own process with its peak resident memory.

The CPU model and the flags the kernels rely on are printed first.

    .venv/bin/python benchmarks/mobile.py --demo runs/demo runs/demo-mobile [--figure docs/figures/mobile_demo.png]

instead compares a demo teacher (make demo's run, G) with its distilled student on the 50
held-out demo:flat test images: L1 and PSNR against the exact striped counterpart and
l1_ratio (identity L1 / translation L1, as `tfcyclegan evaluate` reports it), teacher
beside student, and student against teacher; `--figure` saves input | teacher | student
of the first held-out images.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MODELS = (("resnet", 64, 9), ("resnet", 64, 6), ("mobile", 16, 9), ("mobile", 24, 9), ("mobile", 32, 9))
QUANTIZE = ("none", "float16", "dynamic", "int8")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per quantization and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--step-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per kind (after 2 warm-ups)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-steps", action="store_true")
    parser.add_argument("--demo", nargs=2, metavar=("TEACHER_RUN", "STUDENT_RUN"), help="demo ground truth instead")
    parser.add_argument("--figure", help="with --demo: write input | teacher | student of 4 held-out images here")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one step measurement: distill, distill_gan or fit
    return parser.parse_args()


def cpu_line():
    """The CPU model and the flags TensorFlow's and XNNPACK's kernels use here."""
    model, flags = "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and model == "unknown":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
    return f"CPU: {model}, {os.cpu_count()} cores; flags: {' '.join(f for f in wanted if f in flags) or 'none of'}"


def build(kind, ngf, blocks, name="generator_g"):
    from tfcyclegan.core.networks import MobileResnetGenerator, ResnetGenerator

    tf.keras.utils.set_random_seed(0)
    generator = (MobileResnetGenerator if kind == "mobile" else ResnetGenerator)(ngf=ngf, n_blocks=blocks, name=name)
    generator(tf.zeros((1, 32, 32, 3)))
    return generator


def label(model):
    kind, ngf, blocks = model
    return f"{'ResNet' if kind == 'resnet' else 'mobile'} {blocks} blocks, ngf {ngf}"


def cost_table(sizes):
    from tfcyclegan.core import cost

    costs = {(m, s): cost.cost(build(*m), s) for m in MODELS for s in sizes}
    print("\n| generator | parameters | " + " | ".join(f"G MACs {s}px | x fewer" for s in sizes) + " |")
    print("|---|---|" + "---|---|" * len(sizes))
    for m in MODELS:
        cells = [f"{costs[m, s].macs / 1e9:.2f} | {costs[MODELS[0], s].macs / costs[m, s].macs:.1f}" for s in sizes]
        print(f"| {label(m)} | {costs[m, sizes[0]].parameters / 1e6:.3f} M | " + " | ".join(cells) + " |")
    return costs


def tflite_models(folder, size):
    """{(model, quantize): .tflite bytes} converted as `tfcyclegan export --format tflite` converts."""
    from tfcyclegan.export import samples, savedmodel, tflite

    calibration = samples.synthetic_images(8, size, seed=0)
    blobs = {}
    for m in MODELS:
        scratch = Path(folder) / f"{m[0]}{m[1]}_{m[2]}"
        savedmodel.write_savedmodel(build(*m), None, scratch)
        for quantize in QUANTIZE:
            started = time.perf_counter()
            blobs[m, quantize] = tflite.convert_tflite(scratch, "a2b", quantize, calibration)
            print(f"  converted {label(m)} {quantize} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return blobs


def interpreter(blob, size, threads):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=blob, num_threads=threads)
    index = runner.get_input_details()[0]["index"]
    runner.resize_tensor_input(index, [1, size, size, 3], strict=False)
    runner.allocate_tensors()
    runner.set_tensor(index, np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32))
    return runner


def timed_invoke(runner):
    start = time.perf_counter()
    runner.invoke()
    return time.perf_counter() - start


def latency_table(sizes, threads, repeats):
    with tempfile.TemporaryDirectory() as folder:
        blobs = tflite_models(folder, 256)
    print("\n| generator | quantize | " + " | ".join(f"ms {s}px | x teacher" for s in sizes) + " |")
    print("|---|---|" + "---|---|" * len(sizes))
    rows = {}
    for quantize in QUANTIZE:
        for size in sizes:
            runners = {m: interpreter(blobs[m, quantize], size, threads) for m in MODELS}
            for runner in runners.values():
                timed_invoke(runner)  # warm-up: XNNPACK packs its weights on the first run
            times = {m: [] for m in MODELS}
            for round_ in range(repeats):
                order = MODELS if round_ % 2 == 0 else MODELS[::-1]
                for m in order:
                    times[m].append(timed_invoke(runners[m]))
            for m in MODELS:
                ratio = statistics.median(t / s for t, s in zip(times[m], times[MODELS[0]]))
                rows.setdefault((m, quantize), []).append(f"{statistics.median(times[m]) * 1e3:.0f} | {ratio:.3f}")
        for m in MODELS:  # as each quantization finishes, so a run cut short keeps its rows
            print(f"| {label(m)} | {quantize} | " + " | ".join(rows[m, quantize]) + " |", flush=True)


def step_child(kind, size, steps, threads):
    """Time `steps` training steps of one kind in this process; print JSON with the peak RSS."""
    import keras

    from tfcyclegan.core.distill import Distiller, run_with_features
    from tfcyclegan.core.model import CycleGAN
    from tfcyclegan.core.networks import PatchDiscriminator

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    keras.utils.set_random_seed(0)
    x = tf.random.uniform((1, size, size, 3), -1, 1)
    y = tf.random.uniform((1, size, size, 3), -1, 1)
    if kind == "fit":
        model = CycleGAN(*(build("resnet", 64, 9, n) for n in ("generator_g", "generator_f")),
                         PatchDiscriminator(), PatchDiscriminator(), image_size=size)  # fmt: skip
        model.compile()
    else:
        discriminator = PatchDiscriminator() if kind == "distill_gan" else None
        model = Distiller(build("mobile", 16, 9), build("resnet", 64, 9, "teacher"), discriminator, image_size=size)
        model.compile()
    step = tf.function(model.train_step)
    for _ in range(2):
        step((x, y))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        logs = step((x, y))
        float(next(iter(logs.values())))
        times.append(time.perf_counter() - start)
    result = {"step": statistics.median(times), "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if kind != "fit":
        teach = tf.function(lambda x: run_with_features(model.teacher, x, model.teacher_points, False))
        teach(x)
        forward = []
        for _ in range(steps):
            start = time.perf_counter()
            float(tf.reduce_sum(teach(x)[0]))
            forward.append(time.perf_counter() - start)
        result["teacher_forward"] = statistics.median(forward)
    print(json.dumps(result))


def step_table(size, steps, threads):
    results = {}
    for kind in ("fit", "distill", "distill_gan"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                kind,
                "--step-size",
                str(size),
                "--steps",
                str(steps),
                "--threads",
                str(threads),
            ],  # fmt: skip
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results[kind] = json.loads(out.strip().splitlines()[-1])
    fit = results["fit"]
    print(f"\n| training step at {size}px | s / step | x fit | peak RSS GiB | x fit | teacher forward share |")
    print("|---|---|---|---|---|---|")
    names = {
        "fit": "fit: CycleGAN, 9-block ResNet G and F, two PatchGANs",
        "distill": "distill: 9-block ngf-64 teacher forward + mobile ngf-16 student, no D",
        "distill_gan": "distill with --domain-b: + PatchGAN",
    }
    for kind, r in results.items():
        share = f"{r['teacher_forward'] / r['step']:.2f}" if "teacher_forward" in r else "-"
        print(f"| {names[kind]} | {r['step']:.2f} | {r['step'] / fit['step']:.2f} | {r['rss_gib']:.2f} | "
              f"{r['rss_gib'] / fit['rss_gib']:.2f} | {share} |")  # fmt: skip


def demo_table(teacher_run, student_run, figure=None):
    from PIL import Image

    from tfcyclegan.data import datasets, demo, imagefiles, pipeline
    from tfcyclegan.inference import load_translator
    from tfcyclegan.quality import metrics
    from tfcyclegan.training.figures import image_grid

    domain = datasets.resolve_domain("demo:flat")
    files = sorted(domain.test_files)
    size = 64
    sources = pipeline.make_eval_batch(files, size, len(files))
    truths = pipeline.make_eval_batch([demo.ground_truth_path(p) for p in files], size, len(files))
    teacher = load_translator(teacher_run, "a2b")(sources)
    student = load_translator(student_run, "a2b")(sources)
    print(f"\n| demo a2b, {len(files)} held-out images | L1 to truth | PSNR dB | l1_ratio |")
    print("|---|---|---|---|")
    for name, images in (("identity (input)", sources), ("teacher G", teacher), ("distilled student", student)):
        m = metrics.ground_truth_metrics(sources, images, truths)
        print(f"| {name} | {m['l1']:.4f} | {m['psnr']:.2f} | {m['l1_ratio']:.2f} |")
    both = metrics.pixel_metrics(student, teacher)
    print(f"\nstudent against teacher: L1 {both['l1']:.4f}, PSNR {both['psnr']:.2f} dB, SSIM {both['ssim']:.3f}")
    if figure:
        columns = [imagefiles.to_uint8(x[:4]) for x in (sources, teacher, student)]
        Image.fromarray(image_grid(columns)).save(figure)
        print(f"wrote {figure} (input | teacher | student)")


def main():
    args = parse_args()
    if args.demo:
        demo_table(*args.demo, args.figure)
        return
    if args.child:
        step_child(args.child, args.step_size, args.steps, args.threads)
        return
    print(cpu_line())
    print(f"TensorFlow {tf.__version__}; {args.threads} threads; {args.repeats} rounds")
    cost_table(args.sizes)
    if not args.skip_latency:
        latency_table(args.sizes, args.threads, args.repeats)
    if not args.skip_steps:
        step_table(args.step_size, args.steps, args.threads)


if __name__ == "__main__":
    main()
