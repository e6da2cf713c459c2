"""`tfcyclegan study` (serve a real-vs-fake perceptual study) and `tfcyclegan study-report`."""

import click
from tfcyclegan_cli.common import user_errors


def _err(message):
    click.echo(message, err=True)


@click.command("study")
@click.argument("model")
@click.option(
    "--domain-a", default=None, help="Domain A as `fit` takes it [default: the one the model was trained on]."
)
@click.option("--domain-b", default=None, help="Domain B, given like --domain-a [default: the model's].")
@click.option(
    "--direction",
    type=click.Choice(["a2b", "b2a", "both"]),
    default="a2b",
    show_default=True,
    help="Translations to judge; with both, each session judges one direction, in turn.",
)
@click.option(
    "--practice", type=click.IntRange(min=0), default=10, show_default=True, help="Practice trials, with feedback."
)
@click.option(
    "--trials", type=click.IntRange(min=1), default=40, show_default=True, help="Scored trials, without feedback."
)
@click.option(
    "--exposure-ms",
    type=click.IntRange(min=1, max=60000),
    default=1000,
    show_default=True,
    help="How long each pair of images is shown, in milliseconds.",
)
@click.option(
    "--study-dir", default=None, help="Folder for the images, manifest and answers [default: studies/<model name>]."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the choice of images.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 lets anyone on your network take part.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free one).")
@click.option(
    "--data-root", default=None, help="Where named datasets live [default: $TFCYCLEGAN_DATA, else the Keras cache]."
)
@user_errors
def study(model, domain_a, domain_b, direction, practice, trials, exposure_ms, study_dir, seed, host, port, data_root):
    """Serve a perceptual study of MODEL: is it the real image or the translation?

    MODEL is anything `translate` takes. Test images are translated once into the study
    directory (a re-run reuses them); every finished session is appended to its
    answers.jsonl. Ctrl-C stops the server; `tfcyclegan study-report DIR` counts.

    \b
    tfcyclegan study runs/horse2zebra --direction both
    """
    from pathlib import Path

    from tfcyclegan import study as studies

    directions = list(studies.DIRECTIONS) if direction == "both" else [direction]
    study_dir = Path(study_dir or Path("studies") / Path(model).expanduser().resolve().name)
    studies.prepare(model, study_dir, domain_a, domain_b, directions, count=practice + trials, seed=seed,
                    data_root=data_root, log=_err)  # fmt: skip
    served = studies.Study(study_dir, directions, practice, trials, exposure_ms, log=_err)
    server = studies.StudyServer(served, host, port)
    if not studies.is_loopback(host):
        _err(f"warning: listening on {host}: anyone who can reach this machine on that network can take part")
    _err(f"serving the study in {study_dir} ({', '.join(directions)}; {practice} practice + {trials} scored trials); "
         "Ctrl-C stops")  # fmt: skip
    click.echo(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    _err(f"stopped; answers are in {study_dir / studies.ANSWERS}")


@click.command("study-report")
@click.argument("study_dir", metavar="DIR")
@click.option("--json", "json_path", default=None, help="Also write every number to this JSON file.")
@click.option(
    "--with-classifier",
    is_flag=True,
    help="Also judge the study's images with `evaluate`'s domain classifier (trained once and cached).",
)
@user_errors
def study_report(study_dir, json_path, with_classifier):
    """Fooling rates of a study: per direction, with 95% Wilson intervals and per participant.

    \b
    tfcyclegan study-report studies/horse2zebra --json study.json
    """
    from pathlib import Path

    from tfcyclegan import study_report as reports
    from tfcyclegan.errors import UserError

    result = reports.report(study_dir, with_classifier=with_classifier, log=_err)
    click.echo(reports.format_table(result))
    if json_path:
        try:
            Path(json_path).expanduser().write_text(reports.to_json(result))
        except OSError as error:
            raise UserError(
                f"cannot write {json_path}: {error.strerror or error}; choose another --json file"
            ) from None
        _err(f"wrote {json_path}")
