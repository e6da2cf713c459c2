"""`tfcyclegan import`: pretrained PyTorch CycleGAN generators as a Keras model directory."""

import click
from tfcyclegan_cli.common import user_errors


@click.command("import")
@click.argument("a2b", metavar="A2B")
@click.argument("b2a", metavar="[B2A]", required=False)
@click.option(
    "--output",
    "-o",
    default=None,
    help="Model directory to write [default: saved_models/<A2B name>/keras].",
)
@click.option(
    "--sha256",
    multiple=True,
    help="Expected SHA-256 of A2B (give it again for B2A); a download or file that differs is refused.",
)
@user_errors
def import_(a2b, b2a, output, sha256):
    """Import generator A2B (and the reverse B2A) from PyTorch .pth files.

    Each of A2B and B2A is a .pth state dict of a CycleGAN ResNet generator (e.g. the
    official code's latest_net_G_A.pth) or official:NAME, downloaded once from the
    official pretrained models (style_monet, style_cezanne, style_ukiyoe, style_vangogh,
    horse2zebra, zebra2horse, apple2orange, orange2apple, summer2winter_yosemite,
    winter2summer_yosemite, monet2photo, map2sat, sat2map, cityscapes_photo2label,
    cityscapes_label2photo, facades_photo2label, facades_label2photo, iphone2dslr_flower).
    No torch is needed and nothing in the files is run. Writes generator_g.keras
    (A2B), generator_f.keras (B2A, when given) and metadata.json.

    \b
    tfcyclegan import official:style_ukiyoe --output saved_models/ukiyoe/keras
    tfcyclegan import official:horse2zebra official:zebra2horse
    tfcyclegan translate --model saved_models/ukiyoe/keras --direction a2b photos/ -o ukiyoe/
    """
    from tfcyclegan.models import pretrained

    target, metadata = pretrained.import_generators(a2b, b2a, output, sha256s=sha256)
    kinds = " and ".join(metadata.generators)
    click.echo(f"imported {kinds} into {target}")
