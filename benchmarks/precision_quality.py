"""Does mixed_bfloat16 train as well as float32? Two demo runs that differ only in --precision.

Trains demo:flat <-> demo:striped twice with the same options and seed (the settings of
`make demo` unless given), once per precision, each in its own `tfcyclegan fit`
process, then prints: wall time of each, every per-epoch mean loss side by side with
the relative difference (do the curves track?), and the ground-truth L1 of both
directions on the demo test images with the bf16 / float32 ratio (goal: within 5 %).

    .venv/bin/python benchmarks/precision_quality.py [--out runs/precision] [--epochs 9 --decay-epoch 4]
"""

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PRECISIONS = ("float32", "mixed_bfloat16")
COMMAND = [sys.executable, "-c", "from tfcyclegan_cli.main import main; main(prog_name='tfcyclegan')"]


def train(run_dir, precision, args):
    """Wall seconds of one `tfcyclegan fit` of the demo pair at `precision`."""
    options = ["fit", "--domain-a", "demo:flat", "--domain-b", "demo:striped", "--run-dir", str(run_dir),
               "--precision", precision, "--image-size", "64", "--load-size", "64", "--ngf", "32", "--ndf", "32",
               "--blocks", "4", "--epochs", str(args.epochs), "--decay-epoch", str(args.decay_epoch),
               "--steps-per-epoch", str(args.steps)]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run([*COMMAND, *options], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"fit --precision {precision} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/precision", help="parent folder of the two run directories")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--decay-epoch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200, help="steps per epoch")
    args = parser.parse_args()

    from tfcyclegan import evaluate

    runs = {p: Path(args.out) / p for p in PRECISIONS}
    seconds = {p: train(runs[p], p, args) for p in PRECISIONS}
    losses = {p: list(csv.DictReader(open(runs[p] / "losses.csv"))) for p in PRECISIONS}
    truth = {p: evaluate.evaluate(runs[p], log=lambda message: None)["ground_truth"] for p in PRECISIONS}

    print(f"{time.strftime('%Y-%m-%d %H:%M')}: demo pair, 64px, ngf/ndf 32, 4 blocks, {args.epochs} epochs x "
          f"{args.steps} steps, seed 0; run directories under {args.out}\n")
    print(f"wall time: float32 {seconds['float32']:.0f} s, mixed_bfloat16 {seconds['mixed_bfloat16']:.0f} s "
          f"({seconds['float32'] / seconds['mixed_bfloat16']:.2f}x)\n")
    names = [n for n in losses["float32"][0] if n != "epoch"]
    print("| epoch | " + " | ".join(f"{n} f32 / bf16 (diff)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for row32, row16 in zip(losses["float32"], losses["mixed_bfloat16"]):
        cells = []
        for n in names:
            a, b = float(row32[n]), float(row16[n])
            cells.append(f"{a:.3f} / {b:.3f} ({(b - a) / abs(a):+.1%})")
        print(f"| {row32['epoch']} | " + " | ".join(cells) + " |")
    print("\n| direction | L1 float32 | L1 mixed_bfloat16 | bf16 / f32 | identity L1 |")
    print("|---|---|---|---|---|")
    for direction in ("a2b", "b2a"):
        a, b = truth["float32"][direction], truth["mixed_bfloat16"][direction]
        print(f"| {direction} | {a['l1']:.4f} | {b['l1']:.4f} | {b['l1'] / a['l1']:.3f} | {a['baseline_l1']:.4f} |")


if __name__ == "__main__":
    main()
