"""Latency, file size and fidelity of every inference kind of one generator (G, a2b).

    .venv/bin/python benchmarks/inference.py [--run-dir RUN] [--images DIR] [--threads 2]

Kinds: Keras (tf.function), SavedModel, TFLite float32 / float16 / dynamic / int8.
Latency is the median per image at batch 1 for 256x256 and 512x512 inputs with
`--threads` threads; PSNR is against the Keras output on the same images. Weights come
from the newest checkpoint of --run-dir, or else are random (9 blocks, ngf 64), which
the output says: random weights say nothing about quantization quality. Prints a
markdown table.

    .venv/bin/python benchmarks/inference.py --memory [--ngf 4 64] [--memory-sizes 4096 12000]

instead measures the peak resident memory of translating one uint8 image of each size
(random 6-block weights, `Translator.translate_uint8`, as `tfcyclegan translate` does),
each in its own process (resource.getrusage), beside the pass budget and tile size.
"""

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

NOISE = 0.02  # latency differences between back-to-back runs of the same kind on this machine


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", help="trained run to benchmark [default: random 9-block ngf-64 weights]")
    parser.add_argument(
        "--images", help="domain A images to calibrate int8 and measure PSNR on [default: the run's domain A]"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per kind and size (after 2 warm-ups)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--memory", action="store_true", help="measure peak RSS of large translations instead")
    parser.add_argument("--ngf", type=int, nargs="+", default=[4, 64], help="generator widths for --memory")
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[4096, 12000], help="square sides for --memory")
    parser.add_argument("--memory-child", type=int, nargs=2, help=argparse.SUPPRESS)  # ngf, side: one measurement
    return parser.parse_args()


def memory_child(ngf, side, threads):
    """Translate one side x side uint8 image; print baseline and peak RSS (GiB) and the tile side."""
    from tfcyclegan import inference
    from tfcyclegan.core.networks import ResnetGenerator

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.keras.utils.set_random_seed(0)
    generator = ResnetGenerator(ngf=ngf, n_blocks=6)
    generator(tf.zeros((1, 32, 32, 3)))
    translator = inference.keras_translator(generator)
    translator.translate_uint8(np.zeros((64, 64, 3), np.uint8))  # trace outside the measurement
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    translator.translate_uint8(image)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(baseline / 2**20, peak / 2**20, translator.tile, translator.max_pixels, seconds)


def memory(args):
    from tfcyclegan import inference

    print(
        f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB"
    )
    print(f"pass budget {inference.PASS_BYTES / 2**30:.1f} GiB; one uint8 image per process, peak RSS by getrusage\n")
    print("| ngf | image | tile | pixels per pass | peak RSS GiB | before translating GiB | seconds |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for ngf in args.ngf:
        for side in args.memory_sizes:
            command = [sys.executable, __file__, "--memory-child", str(ngf), str(side), "--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                print(f"| {ngf} | {side} x {side} | failed: {done.stderr.strip().splitlines()[-1]} |||||")
                continue
            baseline, peak, tile, pixels, seconds = (float(v) for v in done.stdout.split()[-5:])
            print(
                f"| {ngf} | {side} x {side} | {tile:.0f} | {pixels / 1e6:.1f} M | {peak:.2f} | {baseline:.2f} | "
                f"{seconds:.0f} |",
                flush=True,
            )


def load_weights(run_dir):
    """(G, F, description, training image size, (domain A eval files, domain A train files) or None)."""
    from tfcyclegan.core.networks import ResnetGenerator
    from tfcyclegan.data import datasets
    from tfcyclegan.runs import rundir
    from tfcyclegan.util import report
    from tfcyclegan.util.errors import UserError

    if run_dir:
        generator_g, generator_f, config = rundir.load_generators(run_dir)
        try:
            domain_a, _ = datasets.resolve_domains(config.domain_a, config.domain_b, config.data_root, download=False)
            files = domain_a.test_files or domain_a.train_files, domain_a.train_files
        except UserError as error:
            report.note(f"note: {error}; measuring on synthetic images instead (or give --images DIR)")
            files = None
        description = f"trained: {run_dir} ({config.blocks} blocks, ngf {config.ngf}, {config.image_size} px)"
        return generator_g, generator_f, description, config.image_size, files
    tf.keras.utils.set_random_seed(0)
    generators = [ResnetGenerator(ngf=64, n_blocks=9, name=name) for name in ("generator_g", "generator_f")]
    for generator in generators:
        generator(tf.zeros((1, 32, 32, 3)))
    description = "RANDOM weights (9 blocks, ngf 64): quantization quality here is not representative"
    return (*generators, description, 256, None)


def image_sets(files, sizes, calibration_size):
    """(calibration batch, {size: eval batch}, label) from (eval files, calibration files), or synthetic.

    Calibration images have the training size, as `tfcyclegan export` uses.
    """
    from tfcyclegan import export
    from tfcyclegan.data import pipeline

    if files is None:
        evaluation = {s: export.synthetic_images(4, s, 8 + s) for s in sizes}
        return export.synthetic_images(32, calibration_size, 7), evaluation, "synthetic images"
    evaluation, calibration = files
    count = export.CALIBRATION_COUNT
    calib = pipeline.make_eval_batch(calibration[:: max(1, len(calibration) // count)][:count], calibration_size, count)
    picks = evaluation[:: max(1, len(evaluation) // 4)][:4]
    return calib, {s: pipeline.make_eval_batch(picks, s, 4) for s in sizes}, f"{len(picks)} images of domain A"


def interleaved_ms(runs, x, repeats):
    """Median milliseconds per call of each run on `x`, the runs timed in turn, so that
    load changes on a shared machine hit every kind alike."""
    for run in runs.values():
        run(x), run(x)  # warm-up: tracing, allocation
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def tflite_runner(path, threads):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    shape = [None]

    def run(x):
        if shape[0] != x.shape:
            interpreter.resize_tensor_input(index, x.shape)
            interpreter.allocate_tensors()
            shape[0] = x.shape
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return run


def size_mb(path):
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def main():
    args = parse_args()
    if args.memory_child:
        return memory_child(*args.memory_child, args.threads)
    if args.memory:
        return memory(args)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tfcyclegan import export, inference
    from tfcyclegan.data import imagefiles
    from tfcyclegan.util import report

    load_before = os.getloadavg()
    generator, generator_f, weights, train_size, files = load_weights(args.run_dir)
    if args.images:
        files = (imagefiles.list_images(args.images),) * 2
    calibration, evaluation, images = image_sets(files, args.sizes, train_size)
    work = Path(tempfile.mkdtemp(prefix="tfcyclegan-bench-"))
    try:
        export.write_savedmodel(generator, generator_f, work / "savedmodel")
        loaded = tf.saved_model.load(str(work / "savedmodel"))
        kinds = {
            "Keras (tf.function)": (inference.keras_translator(generator).run, 4e-6 * generator.count_params()),
            "SavedModel (both directions on disk)": (lambda x: loaded.a2b(x).numpy(), size_mb(work / "savedmodel")),
        }
        for quantize in export.QUANTIZE:
            path = work / f"a2b-{quantize}.tflite"
            path.write_bytes(export.convert_tflite(work / "savedmodel", "a2b", quantize, calibration))
            name = f"TFLite {'float32' if quantize == 'none' else quantize}"
            kinds[name] = (tflite_runner(path, args.threads), size_mb(path))
        runs = {name: run for name, (run, _) in kinds.items()}
        rows = {name: {"size": mb} for name, (_, mb) in kinds.items()}
        for s, x in evaluation.items():
            reference = runs["Keras (tf.function)"](x)
            for name, ms in interleaved_ms(runs, x[:1], args.repeats).items():
                rows[name][f"ms{s}"] = ms
                out = [runs[name](x[i : i + 1])[0] for i in range(len(x))]
                rows[name][f"psnr{s}"] = np.mean([export.psnr(reference[i], y) for i, y in enumerate(out)])
            report.note(f"measured {s}x{s}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    keras_ms = rows["Keras (tf.function)"]
    print(f"\nweights: {weights}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads; "
        f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after (shared machine)"
    )
    print(
        f"PSNR vs Keras on {images}, mean per image; latency: median of {args.repeats} runs at batch 1, "
        "kinds timed in turn\n"
    )
    heads = [f"{s}x{s} ms" for s in args.sizes] + [f"x Keras @{s}" for s in args.sizes]
    heads += [f"PSNR @{s} dB" for s in args.sizes]
    print("| kind | MB | " + " | ".join(heads) + " |")
    print("|---|---:|" + "---:|" * len(heads))
    for name, row in rows.items():
        cells = [f"{row[f'ms{s}']:.0f}" for s in args.sizes]
        cells += [f"{row[f'ms{s}'] / keras_ms[f'ms{s}']:.2f}" for s in args.sizes]
        cells += ["inf" if np.isinf(row[f"psnr{s}"]) else f"{row[f'psnr{s}']:.1f}" for s in args.sizes]
        print(f"| {name} | {row['size']:.1f} | " + " | ".join(cells) + " |")
    s = args.sizes[0]
    saved, int8 = rows["SavedModel (both directions on disk)"], rows["TFLite int8"]
    # The SavedModel runs the Keras graph (plus a pad and a crop that are empty at sizes
    # divisible by 4), so a difference within run-to-run noise is no difference.
    ratio = saved[f"ms{s}"] / keras_ms[f"ms{s}"]
    print(
        f"\ngoal SavedModel no slower than Keras @{s}: {ratio:.3f}x Keras, "
        f"{'met' if ratio <= 1 + NOISE else 'NOT met'} (tolerance {NOISE:.0%}, the spread between runs)"
    )
    print(
        f"goal int8 <= 0.85x Keras latency @{s} at PSNR >= 30 dB: "
        f"{'met' if int8[f'ms{s}'] <= 0.85 * keras_ms[f'ms{s}'] and int8[f'psnr{s}'] >= 30 else 'NOT met'}"
        + ("" if args.run_dir else " (random weights: not meaningful)")
    )


if __name__ == "__main__":
    main()
