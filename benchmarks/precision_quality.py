"""Does mixed_bfloat16 train as well as float32? Demo runs that differ only in --precision, over several seeds.

Trains demo:flat <-> demo:striped once per (seed, precision) with the same options (the
settings of `make demo` unless given), each in its own `tfcyclegan fit` process, then
prints: wall time of each run; the per-epoch mean losses of each precision averaged
over the seeds, with their relative difference and, for scale, the spread between
float32 seeds (do the curves track?); and the ground-truth L1 of both directions on the
demo test images per seed, their means and standard deviations, the bf16 / float32
ratio of the means (goal: within 5 %), how many standard errors apart the means are,
and the float32 seed-to-seed spread. Finished runs already in --out are reused, so
seeds can be added to an earlier invocation.

    .venv/bin/python benchmarks/precision_quality.py [--seeds 0,1,2] [--out runs/precision]
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PRECISIONS = ("float32", "mixed_bfloat16")
COMMAND = [sys.executable, "-c", "from tfcyclegan_cli.main import main; main(prog_name='tfcyclegan')"]


def train(run_dir, precision, seed, args):
    """Wall seconds of one `tfcyclegan fit` of the demo pair at `precision`."""
    options = ["fit", "--domain-a", "demo:flat", "--domain-b", "demo:striped", "--run-dir", str(run_dir),
               "--precision", precision, "--seed", str(seed), "--image-size", "64", "--load-size", "64",
               "--ngf", "32", "--ndf", "32", "--blocks", "4", "--epochs", str(args.epochs),
               "--decay-epoch", str(args.decay_epoch), "--steps-per-epoch", str(args.steps)]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run([*COMMAND, *options], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"fit --precision {precision} --seed {seed} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def spread(values):
    """(max - min) / mean: how far apart runs that differ only by seed land."""
    return (max(values) - min(values)) / statistics.mean(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/precision", help="parent folder of the run directories")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; each trains once per precision")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--decay-epoch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200, help="steps per epoch")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    from tfcyclegan import evaluate

    runs = {(p, s): Path(args.out) / f"{p}-seed{s}" for s in seeds for p in PRECISIONS}
    seconds, losses, truth = {}, {}, {}
    for (p, s), run_dir in runs.items():
        log = run_dir / "losses.csv"
        # A finished run of an earlier invocation is reused, so seeds can be added later.
        done = log.exists() and len(list(csv.DictReader(open(log)))) == args.epochs
        seconds[p, s] = None if done else train(run_dir, p, s, args)
        losses[p, s] = list(csv.DictReader(open(log)))
        truth[p, s] = evaluate.evaluate(run_dir, log=lambda message: None)["ground_truth"]
        print(f"{p} seed {s}: {'reused' if done else f'trained in {seconds[p, s]:.0f} s'}", file=sys.stderr, flush=True)

    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}: demo pair, 64px, ngf/ndf 32, 4 blocks, {args.epochs} epochs x "
        f"{args.steps} steps, seeds {args.seeds}; run directories under {args.out}\n"
    )
    for p in PRECISIONS:
        times = (f"{seconds[p, s]:.0f} s" if seconds[p, s] else "earlier run" for s in seeds)
        print(f"wall time {p}: " + ", ".join(times))

    names = [n for n in losses["float32", seeds[0]][0] if n != "epoch"]
    print("\nPer-epoch mean losses, mean over seeds: float32 / bf16 (bf16 - f32, relative; float32 seed spread)\n")
    print("| epoch | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for epoch in range(args.epochs):
        cells = []
        for n in names:
            f32 = [float(losses["float32", s][epoch][n]) for s in seeds]
            b16 = [float(losses["mixed_bfloat16", s][epoch][n]) for s in seeds]
            a, b = statistics.mean(f32), statistics.mean(b16)
            cells.append(f"{a:.3f} / {b:.3f} ({(b - a) / abs(a):+.1%}; {spread(f32):.0%})")
        print(f"| {epoch + 1} | " + " | ".join(cells) + " |")

    print("\nGround-truth L1 on the demo test images (lower is better)\n")
    print(
        "| direction | "
        + " | ".join(f"f32 / bf16 seed {s}" for s in seeds)
        + " | mean +- sd f32 | mean +- sd bf16 | bf16 / f32 | difference / its standard error "
        "| f32 seed spread | identity L1 |"
    )
    print("|---|" + "---|" * (len(seeds) + 6))
    for direction in ("a2b", "b2a"):
        f32 = [truth["float32", s][direction]["l1"] for s in seeds]
        b16 = [truth["mixed_bfloat16", s][direction]["l1"] for s in seeds]
        a, b = statistics.mean(f32), statistics.mean(b16)
        sd_a, sd_b = (statistics.stdev(v) if len(v) > 1 else float("nan") for v in (f32, b16))
        # How many standard errors apart the two means are: under 2, seeds alone explain it.
        z = (b - a) / ((sd_a**2 + sd_b**2) / len(seeds)) ** 0.5
        per_seed = " | ".join(f"{x:.4f} / {y:.4f}" for x, y in zip(f32, b16))
        print(
            f"| {direction} | {per_seed} | {a:.4f} +- {sd_a:.4f} | {b:.4f} +- {sd_b:.4f} | {b / a:.3f} "
            f"| {z:+.1f} | {spread(f32):.0%} | {truth['float32', seeds[0]][direction]['baseline_l1']:.4f} |"
        )


if __name__ == "__main__":
    main()
