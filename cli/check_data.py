"""`tfcyclegan check-data`: decode every image under a folder and list the unusable ones."""

import click
from tfcyclegan_cli.common import user_errors


@click.command("check-data")
@click.argument("folder")
@user_errors
def check_data(folder):
    """Decode every image under FOLDER; print each unreadable file with its reason.

    Exits 1 when no image is readable.
    """
    from tfcyclegan.data.imagefiles import list_images, scan_images
    from tfcyclegan.util.errors import UserError

    paths = list_images(folder)
    good, bad = scan_images(paths)
    for path, reason in bad:
        click.echo(f"{path}: {reason}")
    click.echo(f"{len(good)} readable, {len(bad)} unreadable of {len(paths)} image files under {folder}")
    if not good:
        raise UserError(f"no readable image under {folder}; replace the files listed above")
