"""`tfcyclegan evaluate`: quality numbers of a trained model, as a table and as JSON."""

import click
from tfcyclegan_cli.common import user_errors


@click.command("evaluate")
@click.argument("model")
@click.option(
    "--domain-a", default=None, help="Domain A as `fit` takes it [default: the one the model was trained on]."
)
@click.option("--domain-b", default=None, help="Domain B, given like --domain-a [default: the model's].")
@click.option(
    "--split",
    type=click.Choice(["test", "train"]),
    default="test",
    show_default=True,
    help="Images to evaluate on (a domain without test images: a held-out 20% of train, with a note).",
)
@click.option("--json", "json_path", default=None, help="Also write every number to this JSON file.")
@click.option(
    "--data-root", default=None, help="Where named datasets live [default: $TFCYCLEGAN_DATA, else the Keras cache]."
)
@click.option(
    "--image-size",
    type=click.IntRange(min=16),
    default=None,
    help="Resize evaluation images to this size [default: the model's training size].",
)
@click.option(
    "--inception-weights",
    default=None,
    help="Local InceptionV3 notop .h5 weights for FID/KID [default: Keras' ImageNet download, cached].",
)
@user_errors
def evaluate(model, domain_a, domain_b, split, json_path, data_root, image_size, inception_weights):
    """Cycle consistency, domain-classifier fooling rate, FID/KID and (demo domains) ground truth.

    \b
    tfcyclegan evaluate runs/demo_flat2demo_striped --json results.json
    """
    from pathlib import Path

    from tfcyclegan import evaluate as evaluation
    from tfcyclegan.errors import UserError

    result = evaluation.evaluate(
        model, domain_a, domain_b, split=split, data_root=data_root, image_size=image_size,
        inception_weights=inception_weights or "imagenet",
        log=lambda message: click.echo(message, err=True),
    )  # fmt: skip
    click.echo(evaluation.format_table(result))
    if json_path:
        try:
            Path(json_path).expanduser().write_text(evaluation.to_json(result))
        except OSError as error:
            raise UserError(
                f"cannot write {json_path}: {error.strerror or error}; choose another --json file"
            ) from None
        click.echo(f"wrote {json_path}")
