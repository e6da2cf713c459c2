"""`tfcyclegan download`: fetch and unzip a Berkeley CycleGAN dataset (or write the demo pair)."""

import click
from tfcyclegan_cli.common import user_errors


@click.command("download")
@click.argument("names", nargs=-1, required=True, metavar="NAME [NAME]")
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Where datasets live [default: $TFCYCLEGAN_DATA, else the Keras cache].",
)
@user_errors
def download(names, data_root):
    """Download dataset NAME into the data root, checking its SHA-256.

    NAME is an archive (horse2zebra, ukiyoe2photo, ...), a named domain held by one
    archive (zebras), a named pair (horses zebras), or `demo` for the built-in pair.
    """
    from tfcyclegan.data import datasets, demo

    if len(names) > 2:
        raise click.UsageError("give one archive or domain name, or two domain names")
    root = datasets.default_data_root() if data_root is None else data_root
    datasets.check_data_root(root, data_root is not None)
    if names == ("demo",):
        path = demo.ensure_demo_data(root)
    elif len(names) == 1 and names[0] in datasets.ARCHIVES:
        path = datasets.download_archive(names[0], root)
    else:
        path = datasets.download_archive(datasets.find_archive(*names), root)
    click.echo(path)
