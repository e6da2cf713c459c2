"""The `tfcyclegan` command: a click group; each subcommand lives in its own module."""

import click

from tfcyclegan.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tfcyclegan")
@click.option(
    "--debug", is_flag=True, help="Show full tracebacks instead of one-line errors, and TensorFlow's start-up log."
)
def main(debug):
    """CycleGAN unpaired image-to-image translation in TensorFlow / Keras 3."""


from tfcyclegan_cli.fit import fit  # noqa: E402  (commands register after the group exists)

main.add_command(fit)

from tfcyclegan_cli.distill import distill  # noqa: E402

main.add_command(distill)

from tfcyclegan_cli.download import download  # noqa: E402

main.add_command(download)

from tfcyclegan_cli.check_data import check_data  # noqa: E402

main.add_command(check_data)

from tfcyclegan_cli.translate import translate  # noqa: E402

main.add_command(translate)

from tfcyclegan_cli.export import export  # noqa: E402

main.add_command(export)

from tfcyclegan_cli.evaluate import evaluate  # noqa: E402

main.add_command(evaluate)

from tfcyclegan_cli.study import study, study_report  # noqa: E402

main.add_command(study)
main.add_command(study_report)

from tfcyclegan_cli.import_cmd import import_  # noqa: E402

main.add_command(import_)
