"""The `tfcyclegan` command: a click group; each subcommand lives in its own module."""

import click

from tfcyclegan.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tfcyclegan")
def main():
    """CycleGAN unpaired image-to-image translation in TensorFlow / Keras 3."""
