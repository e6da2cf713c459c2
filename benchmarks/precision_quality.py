"""Does mixed_bfloat16 train as well as float32? Demo runs that differ only in --precision, over several seeds.

Trains demo:flat <-> demo:striped once per (seed, precision) with the same options (the
settings of `make demo` unless given), each in its own `tfcyclegan fit` process, then
prints: wall time of each run; the per-epoch mean losses of each precision averaged
over the seeds, with their relative difference and, for scale, the spread between
float32 seeds (do the curves track?); and the ground-truth L1 of both directions on the
demo test images per seed, their means and standard deviations, the bf16 / float32
ratio of the means (goal: within 5 %), how many standard errors apart the means are,
and the float32 seed-to-seed spread; then each precision's `l1_ratio` (identity L1 /
L1, the demo's quality measure; issue #15 asks for >= 2 both ways) per seed with its
min-max. Finished runs already in --out are reused, so seeds can be added to an earlier
invocation; --out remembers the settings its runs were trained with and refuses others.

`--precisions float32` trains one precision only (the tables then show its seeds
alone), and `--fit-options` adds `tfcyclegan fit` options to those of `make demo`
(a later option wins), so the script also measures a demo setting under trial over seeds:

    .venv/bin/python benchmarks/precision_quality.py [--seeds 0,1,2] [--out runs/precision]
    .venv/bin/python benchmarks/precision_quality.py --precisions float32 --seeds 0,1,2,3,4,5 \\
        --epochs 10 --decay-epoch 5 --steps 280 --fit-options "--lambda-identity 10" --out runs/trial
"""

import argparse
import csv
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PRECISIONS = ("float32", "mixed_bfloat16")
SHORT = {"float32": "f32", "mixed_bfloat16": "bf16", "mixed_float16": "f16"}
# make demo's options besides the schedule (--epochs, --decay-epoch, --steps-per-epoch).
DEMO_OPTIONS = [
    "--image-size",
    "64",
    "--load-size",
    "64",
    "--ngf",
    "32",
    "--ndf",
    "32",
    "--blocks",
    "4",
    "--disc-layers",
    "2",
]
# Set by this script per run or by its own arguments, so not taken from --fit-options.
OWN_OPTIONS = {
    "--domain-a": "", "--domain-b": "", "--run-dir": "--out", "--precision": "--precisions", "--seed": "--seeds",
    "--epochs": "--epochs", "--decay-epoch": "--decay-epoch", "--steps-per-epoch": "--steps", "--resume": "",
}  # fmt: skip
COMMAND = [sys.executable, "-c", "from tfcyclegan_cli.main import main; main(prog_name='tfcyclegan')"]


def train(run_dir, precision, seed, args):
    """Wall seconds of one `tfcyclegan fit` of the demo pair at `precision`."""
    options = ["fit", "--domain-a", "demo:flat", "--domain-b", "demo:striped", "--run-dir", str(run_dir),
               "--precision", precision, "--seed", str(seed), *DEMO_OPTIONS, "--epochs", str(args.epochs),
               "--decay-epoch", str(args.decay_epoch), "--steps-per-epoch", str(args.steps), *args.fit_options]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run([*COMMAND, *options], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"fit --precision {precision} --seed {seed} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def spread(values):
    """(max - min) / mean: how far apart runs that differ only by seed land."""
    return (max(values) - min(values)) / statistics.mean(values)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/precision", help="parent folder of the run directories")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; each trains once per precision")
    parser.add_argument(
        "--precisions",
        default=",".join(PRECISIONS),
        help="comma-separated precisions to train; with two, the second is compared to the first",
    )
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--decay-epoch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200, help="steps per epoch")
    parser.add_argument(
        "--fit-options",
        default="",
        help="further `tfcyclegan fit` options, one quoted string, after make demo's (a later option wins), "
        'e.g. "--lambda-identity 10 --ngf 16"',
    )
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.precisions = [p.strip() for p in args.precisions.split(",")]
    for p in args.precisions:
        if p not in SHORT:
            parser.error(f"--precisions: {p!r} is not one of {', '.join(SHORT)}")
    if len(set(args.precisions)) != len(args.precisions) or len(args.precisions) > 2:
        parser.error("--precisions takes one precision, or two different ones to compare")
    args.fit_options = shlex.split(args.fit_options)
    for word in args.fit_options:
        name = word.split("=")[0]
        if name in OWN_OPTIONS:
            instead = f"; use this script's {OWN_OPTIONS[name]}" if OWN_OPTIONS[name] else ""
            parser.error(f"--fit-options: {name} is set by this script{instead}")
    return args


def check_settings(out, args):
    """Record the settings of the runs in `out`, or exit if it holds runs trained with others."""
    settings = shlex.join(
        [*DEMO_OPTIONS, "--epochs", str(args.epochs), "--decay-epoch", str(args.decay_epoch),
         "--steps-per-epoch", str(args.steps), *args.fit_options]
    )  # fmt: skip
    record = out / "fit-options.txt"
    if record.exists():
        if record.read_text().strip() != settings:
            sys.exit(f"{out} holds runs trained with {record.read_text().strip()}; use another --out for {settings}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        record.write_text(settings + "\n")
    return settings


def main():
    args = parse_args()
    seeds, precisions = args.seeds, args.precisions
    ref, other = precisions[0], (precisions[1] if len(precisions) == 2 else None)
    # An --out from before the record is taken to hold runs of the settings asked for now.
    settings = check_settings(Path(args.out), args)

    from tfcyclegan.quality import evaluate
    from tfcyclegan.runs.layout import RunLayout
    from tfcyclegan.util import cpu

    # The numbers hold for CPUs of these features (mixed_bfloat16 runs slow without native bfloat16).
    print(cpu.describe(cpu.read_cpuinfo()), file=sys.stderr, flush=True)

    runs = {(p, s): Path(args.out) / f"{p}-seed{s}" for s in seeds for p in precisions}
    seconds, losses, truth = {}, {}, {}
    for (p, s), run_dir in runs.items():
        log = RunLayout(run_dir).losses_csv
        # A finished run of an earlier invocation is reused, so seeds can be added later.
        done = log.exists() and len(list(csv.DictReader(open(log)))) == args.epochs
        seconds[p, s] = None if done else train(run_dir, p, s, args)
        losses[p, s] = list(csv.DictReader(open(log)))
        truth[p, s] = evaluate.evaluate(run_dir, log=lambda message: None)["ground_truth"]
        print(f"{p} seed {s}: {'reused' if done else f'trained in {seconds[p, s]:.0f} s'}", file=sys.stderr, flush=True)

    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}: demo pair, {args.epochs} epochs x {args.steps} steps "
        f"({args.epochs * args.steps} steps), seeds {','.join(map(str, seeds))}; fit options {settings}; "
        f"run directories under {args.out}\n"
    )
    for p in precisions:
        times = (f"{seconds[p, s]:.0f} s" if seconds[p, s] else "earlier run" for s in seeds)
        print(f"wall time {p}: " + ", ".join(times))

    names = [n for n in losses[ref, seeds[0]][0] if n != "epoch"]
    if other:
        print(
            f"\nPer-epoch mean losses, mean over seeds: {ref} / {other} ({SHORT[other]} - {SHORT[ref]}, relative; "
            f"{ref} seed spread)\n"
        )
    else:
        print(f"\nPer-epoch mean losses, mean over seeds ({ref} seed spread)\n")
    print("| epoch | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for epoch in range(args.epochs):
        cells = []
        for n in names:
            first = [float(losses[ref, s][epoch][n]) for s in seeds]
            a = statistics.mean(first)
            if other:
                b = statistics.mean(float(losses[other, s][epoch][n]) for s in seeds)
                cells.append(f"{a:.3f} / {b:.3f} ({(b - a) / abs(a):+.1%}; {spread(first):.0%})")
            else:
                cells.append(f"{a:.3f} ({spread(first):.0%})")
        print(f"| {epoch + 1} | " + " | ".join(cells) + " |")

    print("\nGround-truth L1 on the demo test images (lower is better)\n")
    r, o = SHORT[ref], SHORT[other] if other else None
    if other:
        head = [f"{r} / {o} seed {s}" for s in seeds] + [f"mean +- sd {r}", f"mean +- sd {o}", f"{o} / {r}",
                "difference / its standard error"]  # fmt: skip
    else:
        head = [f"{r} seed {s}" for s in seeds] + [f"mean +- sd {r}"]
    head += [f"{r} seed spread", "identity L1"]
    print("| direction | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(head))
    for direction in ("a2b", "b2a"):
        first = [truth[ref, s][direction]["l1"] for s in seeds]
        a = statistics.mean(first)
        sd_a = statistics.stdev(first) if len(first) > 1 else float("nan")
        if other:
            second = [truth[other, s][direction]["l1"] for s in seeds]
            b = statistics.mean(second)
            sd_b = statistics.stdev(second) if len(second) > 1 else float("nan")
            # How many standard errors apart the two means are: under 2, seeds alone explain it.
            z = (b - a) / ((sd_a**2 + sd_b**2) / len(seeds)) ** 0.5
            cells = [f"{x:.4f} / {y:.4f}" for x, y in zip(first, second)]
            cells += [f"{a:.4f} +- {sd_a:.4f}", f"{b:.4f} +- {sd_b:.4f}", f"{b / a:.3f}", f"{z:+.1f}"]
        else:
            cells = [f"{x:.4f}" for x in first] + [f"{a:.4f} +- {sd_a:.4f}"]
        cells += [f"{spread(first):.0%}", f"{truth[ref, seeds[0]][direction]['baseline_l1']:.4f}"]
        print(f"| {direction} | " + " | ".join(cells) + " |")

    print("\n`l1_ratio` (identity L1 / L1; issue #15: >= 2 in both directions for every seed)\n")
    print("| precision | direction | " + " | ".join(f"seed {s}" for s in seeds) + " | min - max | seeds >= 2 |")
    print("|---|---|" + "---|" * (len(seeds) + 2))
    for p in precisions:
        for direction in ("a2b", "b2a"):
            ratios = [truth[p, s][direction]["l1_ratio"] for s in seeds]
            cells = [f"{x:.2f}" for x in ratios] + [f"{min(ratios):.2f} - {max(ratios):.2f}"]
            cells.append(f"{sum(x >= 2 for x in ratios)} of {len(ratios)}")
            print(f"| {p} | {direction} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
