"""`tfcyclegan evaluate`: quality numbers of a trained model, as a table and as JSON."""

import math

import click
from tfcyclegan_cli.common import check_result_file, checkpoint_option, trust_model_option, user_errors

# Stdlib only at import (see its docstring): `tfcyclegan --help` takes its constants without TensorFlow.
from tfcyclegan.quality import evaluate as evaluation


@click.command("evaluate")
@click.argument("model")
@click.option(
    "--domain-a", default=None, help="Domain A as `fit` takes it [default: the one the model was trained on]."
)
@click.option("--domain-b", default=None, help="Domain B, given like --domain-a [default: the model's].")
@click.option(
    "--split",
    type=click.Choice(evaluation.SPLIT_CHOICES),
    default="test",
    show_default=True,
    help=f"Images to evaluate on (a domain without test images: a held-out {evaluation.HOLDOUT_FRACTION:.0%} of "
    "train, with a note).",
)
@click.option("--json", "json_path", default=None, help="Also write every number to this JSON file.")
@click.option(
    "--data-root", default=None, help="Where named datasets live [default: $TFCYCLEGAN_DATA, else the Keras cache]."
)
@click.option(
    "--image-size",
    type=click.IntRange(min=evaluation.MIN_IMAGE_SIZE, max=evaluation.MAX_IMAGE_SIZE),
    default=None,
    help="Resize evaluation images to this size [default: the model's training size].",
)
@click.option(
    "--inception-weights",
    default=None,
    help="Local InceptionV3 notop .h5 weights for FID/KID [default: Keras' ImageNet download, cached].",
)
@trust_model_option
@checkpoint_option
@click.option(
    "--checkpoints",
    "every",
    type=click.Choice(["all"]),
    default=None,
    help="all: score every checkpoint a run directory kept (the newest three and those of `fit --keep-every`) "
    "in one table, without FID/KID.",
)
@user_errors
def evaluate(
    model,
    domain_a,
    domain_b,
    split,
    json_path,
    data_root,
    image_size,
    inception_weights,
    trust_model,
    checkpoint,
    every,
):
    """Cycle consistency, domain-classifier fooling rate, FID/KID and (demo domains) ground truth.

    \b
    tfcyclegan evaluate runs/demo_flat2demo_striped --json results.json
    tfcyclegan evaluate runs/horse2zebra --checkpoints all    # which checkpoint to keep
    """
    from tfcyclegan.util.errors import UsageError

    if json_path:
        check_result_file(json_path)
    options = dict(
        domain_a=domain_a, domain_b=domain_b, split=split, data_root=data_root, image_size=image_size,
        trust_model=trust_model,
    )  # fmt: skip
    if every and checkpoint is not None:
        raise UsageError("--checkpoint N and --checkpoints all exclude each other: give one")
    if every:
        result = evaluation.evaluate_checkpoints(model, **options)
        click.echo(format_checkpoints(result))
    else:
        result = evaluation.evaluate(
            model, checkpoint=checkpoint, inception_weights=inception_weights or "imagenet", **options
        )
        click.echo(format_table(result))
    if json_path:
        evaluation.write_json(result, json_path)
        click.echo(f"wrote {json_path}")


# Columns of the --checkpoints all table: (header, key, format).
CHECKPOINT_COLUMNS = (
    ("ckpt", "checkpoint", "d"),
    ("epoch", "epoch", ".2f"),
    ("PSNR a", "psnr_a", ".2f"),
    ("PSNR b", "psnr_b", ".2f"),
    ("SSIM a", "ssim_a", ".3f"),
    ("SSIM b", "ssim_b", ".3f"),
    ("G fools", "fooling_a2b", ".1%"),
    ("F fools", "fooling_b2a", ".1%"),
    ("lum G", "inversion_a2b", ".2f"),
    ("lum F", "inversion_b2a", ".2f"),
    ("|G-in|", "identity_a2b", ".3f"),
    ("|F-in|", "identity_b2a", ".3f"),
    ("spread G", "collapse_a2b", ".2f"),
    ("spread F", "collapse_b2a", ".2f"),
)


def format_checkpoints(result):
    """An evaluate_checkpoints() result as a table: one line per checkpoint, oldest first."""
    lines = [
        f"checkpoints of {result['model']} (cycle PSNR dB / SSIM on [0, 1]; fooling rates where the domain "
        "classifier is accurate; lum: luminance correlation with the input; |G-in|: distance to the input; "
        "spread: translations' variety over the inputs'; docs/training.md)",
        " ".join(f"{header:>8s}" for header, _, _ in CHECKPOINT_COLUMNS),
    ]
    for row in result["checkpoints"]:
        cells = []
        for _, key, fmt in CHECKPOINT_COLUMNS:
            value = row.get(key)
            cells.append("-" if value is None else format(value, fmt))
        lines.append(" ".join(f"{cell:>8s}" for cell in cells))
    return "\n".join(lines)


def _number(value, digits=4):
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _line(label, cells=()):
    """A table line: `label` in 28 columns, then each cell right-aligned in 8."""
    return f"{label:28s}" + "".join(f" {cell:>8s}" for cell in cells)


# Columns of the number sections: (header, key, decimals).
L1, PSNR = ("L1", "l1", 4), ("PSNR dB", "psnr", 2)


def _section(title, section, columns, rows, heading=None):
    """A blank line, then `title: unavailable (why)`, or a header of `columns` beside
    `heading` (default: title) and a line for each (label, key) of `rows` whose
    section[key] is not None, its numbers in `columns`."""
    if "unavailable" in section:
        return ["", f"{title}: unavailable ({section['unavailable']})"]
    lines = ["", _line(heading or title, [header for header, _, _ in columns])]
    for label, key in rows:
        if section[key] is not None:
            lines.append(_line(f"  {label}", [_number(section[key][k], decimals) for _, k, decimals in columns]))
    return lines


def format_table(result):
    """An evaluate() result as aligned text lines for a terminal."""
    a, b = result["domain_a"], result["domain_b"]
    lines = [
        (
            f"model {result['model']} ({result['kind']}); {result['split']} images at {result['image_size']}px: "
            f"A {a['spec']} x{a['images']}, B {b['spec']} x{b['images']}"
        ),
        f"scale: {result['scale']}",
    ]
    for direction, why in result["missing_directions"].items():
        lines.append(f"{direction}: not evaluated ({why})")
    lines += _section(
        "cycle consistency", result["cycle"], (L1, PSNR, ("SSIM", "ssim", 4)),
        (("F(G(a)) vs a", "a"), ("G(F(b)) vs b", "b")),
    )  # fmt: skip
    c = result["classifier"]
    lines.append("")
    if c["accuracy"] is None:
        lines.append(f"domain classifier: {c['unavailable']}")
    else:
        lines.append(
            f"domain classifier: accuracy on {c['scored_on']['a']} + {c['scored_on']['b']} real images it did not "
            f"train on {c['accuracy']:.1%} (A {c['accuracy_a']:.1%}, B {c['accuracy_b']:.1%})"
            f"{' [cached]' if c['cached'] else ''}"
        )
        if c["meaningful"]:
            for key, label in (("fooling_a2b", "G(a) called B"), ("fooling_b2a", "F(b) called A")):
                lines.append(_line(f"  {label}", ["-" if c[key] is None else format(c[key], ".1%")]))
        else:
            lines.append(f"  {c['unavailable']}")
    fk = result["fid_kid"]
    lines += _section(
        "FID / KID", fk, (("FID", "fid", 2), ("KID", "kid", 4)),
        (("G(a) vs b", "a2b"), ("  identity: a vs b", "identity_a2b"),
         ("F(b) vs a", "b2a"), ("  identity: b vs a", "identity_b2a")),
        heading=f"FID / KID ({fk.get('weights')} InceptionV3)",
    )  # fmt: skip
    lines += _section(
        "ground truth", result["ground_truth"],
        (L1, PSNR, ("ident L1", "baseline_l1", 4), ("ident dB", "baseline_psnr", 2)),
        (("G(a) vs b*", "a2b"), ("F(b) vs a*", "b2a")),
    )  # fmt: skip
    return "\n".join(lines)


def ground_truth_line(result):
    """The ground truth of a demo run in one line: how many times closer (mean L1) to the
    true counterpart each translation is than its input (`l1_ratio`, > 1 beats doing nothing)."""
    section, a, b = result["ground_truth"], result["domain_a"], result["domain_b"]
    if "unavailable" in section:
        return f"ground truth: unavailable ({section['unavailable']})"
    said = []
    for direction, name, target in (("a2b", "G(a)", b["spec"]), ("b2a", "F(b)", a["spec"])):
        numbers = section[direction]
        if numbers is not None:
            said.append(
                f"{name} {numbers['l1_ratio']:.2f}x closer to the true {target} image than its input "
                f"(mean L1 {numbers['l1']:.4f} vs {numbers['baseline_l1']:.4f})"
            )
    return f"ground truth on {a['images']} + {b['images']} {result['split']} images: " + "; ".join(said)
