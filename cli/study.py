"""`tfcyclegan study` (serve a real-vs-fake perceptual study) and `tfcyclegan study-report`."""

import click
from tfcyclegan_cli.common import check_result_file, trust_model_option, user_errors

# Stdlib only at import (see its docstring): `tfcyclegan --help` takes its constants without NumPy or TensorFlow.
from tfcyclegan.study import server as studies
from tfcyclegan.util.report import note


@click.command("study")
@click.argument("model")
@click.option(
    "--domain-a", default=None, help="Domain A as `fit` takes it [default: the one the model was trained on]."
)
@click.option("--domain-b", default=None, help="Domain B, given like --domain-a [default: the model's].")
@click.option(
    "--direction",
    type=click.Choice([*studies.DIRECTIONS, "both"]),
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
@trust_model_option
@user_errors
def study(
    model,
    domain_a,
    domain_b,
    direction,
    practice,
    trials,
    exposure_ms,
    study_dir,
    seed,
    host,
    port,
    data_root,
    trust_model,
):
    """Serve a perceptual study of MODEL: is it the real image or the translation?

    MODEL is anything `translate` takes. Test images are translated once into the study
    directory (a re-run reuses them); every finished session is appended to its
    answers.jsonl. Ctrl-C stops the server; `tfcyclegan study-report DIR` counts.

    \b
    tfcyclegan study runs/horse2zebra --direction both
    """
    from pathlib import Path

    studies.check_trials(practice, trials)  # before the study is prepared (images translated)
    directions = list(studies.DIRECTIONS) if direction == "both" else [direction]
    study_dir = Path(study_dir or Path("studies") / Path(model).expanduser().resolve().name)
    studies.prepare(model, study_dir, domain_a, domain_b, directions, count=practice + trials, seed=seed,
                    data_root=data_root, trust_model=trust_model)  # fmt: skip
    served = studies.Study(study_dir, directions, practice, trials, exposure_ms)
    server = studies.StudyServer(served, host, port)
    if not studies.is_loopback(host):
        note(f"warning: listening on {host}: anyone who can reach this machine on that network can take part")
    note(f"serving the study in {study_dir} ({', '.join(directions)}; {practice} practice + {trials} scored trials); "
         "Ctrl-C stops")  # fmt: skip
    click.echo(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    answers = study_dir / studies.ANSWERS
    if answers.exists():
        note(f"stopped; answers are in {answers}")
    else:
        note(f"stopped before any session finished; no answers were recorded in {study_dir}")


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
    from tfcyclegan.study import analysis

    if json_path:
        check_result_file(json_path)
    result = analysis.analyse(study_dir, with_classifier=with_classifier)
    click.echo(format_table(result))
    if json_path:
        analysis.write_json(result, json_path)
        note(f"wrote {json_path}")


def _percent(value):
    return "-" if value is None else f"{value:.1%}"


def format_table(result):
    """An analysis.analyse() result as aligned text lines for a terminal."""
    lines = [
        f"study {result['study']}: model {result['model']}, {result['image_size']}px, "
        f"A {result['domain_a']}, B {result['domain_b']}; {result['sessions']} sessions",
        "fooling rate: fraction of scored trials in which the translation was picked as real (50% = indistinguishable)",
        "",
        f"{'direction':10s} {'participants':>12s} {'scored trials':>13s} {'fooling rate':>12s} {'95% CI (Wilson)':>17s}",
    ]
    for direction, d in result["directions"].items():
        low, high = d["ci95"]
        ci = "-" if low is None else f"{low:.1%}-{high:.1%}"
        lines.append(
            f"{direction:10s} {d['participants']:>12d} {d['scored_trials']:>13d} {_percent(d['fooling_rate']):>12s} {ci:>17s}"
        )
    for direction, d in result["directions"].items():
        if d["per_participant"]:
            lines += ["", f"{direction} per participant:"]
            for p in d["per_participant"]:
                lines.append(
                    f"  {p['participant']}  {p['start']}  fooled in {p['fooled']:>4d} of {p['scored_trials']:<4d} "
                    f"{_percent(p['fooling_rate']):>7s}"
                )
    c = result.get("classifier")
    if c and "unavailable" in c:
        lines += ["", c["unavailable"]]
    elif c:
        lines += ["", "domain classifier on the same images (as `tfcyclegan evaluate`):"]
        for direction in result["directions"]:
            v = c[direction]
            rate = _percent(v["fooling_rate"]) if v["meaningful"] else f"not meaningful (< {c['min_accuracy']:.0%})"
            lines.append(f"  {direction}: accuracy on the real images {v['accuracy']:.1%}, fooling rate {rate}")
    return "\n".join(lines)
