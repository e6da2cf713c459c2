"""`tfcyclegan study-report` as library code: fooling rates from a study's answers.jsonl.

The fooling rate of a direction is the fraction of its scored trials in which the
participant picked the translation as the real image (CycleGAN, Zhu et al. 2017,
Table 1: "% Turkers labeled real"); 50 % means people cannot tell. Its 95 % interval is
Wilson's score interval (Wilson 1927; Brown, Cai & DasGupta 2001), which pools every
scored trial as independent. Practice trials never count.
"""

import json
import math
from pathlib import Path

from tfcyclegan.study import server
from tfcyclegan.util import fsutil, report

Z95 = 1.959963984540054  # standard normal quantile at 0.975


def wilson_interval(successes, trials, z=Z95):
    """Wilson score interval of a binomial proportion: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).

    Returns (low, high); (None, None) when there are no trials.
    """
    if trials <= 0:
        return None, None
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    denominator = 1 + z2 / trials
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def fooled(trial):
    """Whether a recorded trial picked the translation as real."""
    return trial["choice"] != trial["real"]


def _rate(k, n):
    return k / n if n else None


def summarize(records, directions):
    """Per direction: participants, scored trials, fooled count, fooling rate, Wilson 95 % interval,
    and each participant's own rate (in file order). Records of other directions are ignored."""
    result = {}
    for direction in directions:
        people = []
        for record in records:
            if record.get("direction") != direction:
                continue
            scored = [t for t in record.get("trials", []) if not t.get("practice")]
            k = sum(fooled(t) for t in scored)
            people.append({"participant": record.get("participant"), "start": record.get("start"),
                           "scored_trials": len(scored), "fooled": k, "fooling_rate": _rate(k, len(scored))})  # fmt: skip
        n = sum(p["scored_trials"] for p in people)
        k = sum(p["fooled"] for p in people)
        low, high = wilson_interval(k, n)
        result[direction] = {"participants": len(people), "scored_trials": n, "fooled": k,
                             "fooling_rate": _rate(k, n), "ci95": [low, high], "per_participant": people}  # fmt: skip
    return result


def _classifier(manifest, study_dir, cache_dir, log):
    """The domain classifier's verdicts on the study's own images, as `evaluate` computes them.

    Its accuracy is measured on the study's real images: the target images shown and the
    source images the translations were made from. It trains on the domains' training
    images less every image the study shows or translated (a study without a test split
    draws them from the training images): scored on images it trained on, it would look
    accurate whatever it learned. With fewer than evaluate.MIN_SCORED training images left
    in a domain it is not measured, and says so.
    """
    from tfcyclegan.data import datasets, pipeline
    from tfcyclegan.quality import classifier
    from tfcyclegan.quality.evaluate import MIN_SCORED

    size = manifest["image_size"]
    a, b = datasets.resolve_domains(manifest["domain_a"]["spec"], manifest["domain_b"]["spec"], manifest["data_root"])
    shown = {
        image["from"] for entry in manifest["directions"].values() for kind in ("real", "fake") for image in entry[kind]
    }
    trained = [[str(p) for p in domain.train_files if str(p) not in shown] for domain in (a, b)]
    if min(map(len, trained)) < MIN_SCORED:
        return {
            "unavailable": f"classifier not measured: {len(trained[0])} (A) and {len(trained[1])} (B) training images "
            f"are not in the study (at least {MIN_SCORED} per domain needed to train it on other images than it is "
            "scored on); give the domains a test split or more images"
        }
    judge, path, cached = classifier.load_or_train(*trained, size, cache_dir, log)

    def load(folder, images):
        files = [study_dir / folder / f"{image['id']}.png" for image in images]
        return pipeline.make_eval_batch(files, size, len(files))

    result = {"weights": path, "cached": cached, "min_accuracy": classifier.MIN_ACCURACY}
    for direction, entry in manifest["directions"].items():
        real_target, sources = load(server.IMAGES, entry["real"]), load(server.SOURCES, entry["fake"])
        fakes = load(server.IMAGES, entry["fake"])
        real_a, real_b = (sources, real_target) if direction == "a2b" else (real_target, sources)
        verdict = judge.accuracy(real_a, real_b)
        verdict["meaningful"] = verdict["accuracy"] >= classifier.MIN_ACCURACY
        rates = judge.fooling_rates(fakes if direction == "a2b" else None, fakes if direction == "b2a" else None)
        verdict["fooling_rate"] = rates[direction] if verdict["meaningful"] else None
        verdict["images"] = len(fakes)
        result[direction] = verdict
    return result


def analyse(study_dir, with_classifier=False, classifier_cache=None, log=report.note):
    """Everything `study-report` prints, as a JSON-ready dict; see the module docstring
    (the command line's format_table shows it as text)."""
    study_dir = Path(study_dir).expanduser()
    manifest = server.read_manifest(study_dir)
    records = server.AnswerStore(study_dir / server.ANSWERS).read(log, check=server.recorded_problem)
    result = {
        "study": str(study_dir),
        "model": manifest["model"],
        "domain_a": manifest["domain_a"]["name"],
        "domain_b": manifest["domain_b"]["name"],
        "image_size": manifest["image_size"],
        "sessions": len(records),
        "directions": summarize(records, list(manifest["directions"])),
    }
    if with_classifier:
        result["classifier"] = _classifier(manifest, study_dir, classifier_cache, log)
    return result


def to_json(result):
    """Strict JSON text of an analyse() result."""
    return json.dumps(result, indent=2, allow_nan=False) + "\n"


def write_json(result, path):
    """Write to_json(result) to `path` (~ expanded) whole or not at all; a UserError when it cannot."""
    fsutil.write_for_user(path, to_json(result), "choose another --json file")
