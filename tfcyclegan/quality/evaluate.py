"""`tfcyclegan evaluate` as library code: every quality number of a trained model in one dict.

Sections (each either numbers or {"unavailable": one-line reason}):
- cycle: L1, PSNR, SSIM of F(G(a)) against a and G(F(b)) against b (metrics.pixel_metrics).
- classifier: accuracy of a CNN trained on real training images of A vs B, measured on
  real images it did not train on (the test split, else a held-out part of the training
  images), and, when it reaches classifier.MIN_ACCURACY, its fooling rates; withheld
  when fewer than MIN_SCORED such images per domain exist.
- fid_kid: FID and KID of G(a) against real b and F(b) against real a on InceptionV3
  pool features, beside the same numbers for the untranslated images (the identity).
- ground_truth: for demo: domains, L1 and PSNR of G(a) against the exact counterpart b*
  beside the identity baseline a against b*, both directions.
- health: the generator figures of `fit`'s health checks (tfcyclegan.training.health) on
  the evaluation images: luminance correlation, distance to the input, collapse ratio.

`evaluate_checkpoints` scores every intact checkpoint of a run (`--checkpoints all`): the
newest ones and those `fit --keep-every` kept, one row each.

Progress and notes go to `log` (report.note: stderr); the result is returned, and
written as JSON by write_json. Its text table is presentation: tfcyclegan_cli.evaluate.

NumPy and the TensorFlow-backed modules are imported where they are used, so that the
command line takes SPLIT_CHOICES, HOLDOUT_FRACTION and MIN_IMAGE_SIZE from here while
`tfcyclegan --help` loads neither (it works where they are not even installed).
"""

import json
import math

from tfcyclegan.models import identify
from tfcyclegan.runs.config import LIMITS
from tfcyclegan.util import fsutil, report
from tfcyclegan.util.errors import UserError

# What `evaluate` takes as its model: anything `translate` takes.
ACCEPTS = identify.Accepts("model", identify.ANY)
SPLIT_CHOICES = ("test", "train")
# Without a test split this seeded fraction of a domain's training images is held out:
# the classifier never trains on it, and (for --split test) it is what is evaluated.
HOLDOUT_FRACTION = 0.2
# Fewer held-out real images per domain than this cannot measure the classifier.
MIN_SCORED = 5
MIN_IMAGE_SIZE = 16  # SSIM's 11 x 11 window must fit in the image
MAX_IMAGE_SIZE = LIMITS["image_size"][1]  # fit's: no model is trained larger
# The evaluation images held at once (real, translated, reconstructed: float32 RGB) may take this much.
MAX_IMAGE_BYTES = 4 << 30
HELD_COPIES = 3
# The sections of a result, in order; evaluate(..., sections=...) computes some of them only.
SECTIONS = ("cycle", "classifier", "fid_kid", "health", "ground_truth")
# Those `--checkpoints all` computes for each checkpoint: FID/KID's Inception pass would dominate the time.
CHECKPOINT_SECTIONS = ("cycle", "classifier", "health")
SCALE = "pixels on [0, 1]: L1 = mean |p - q| (x 255 for grey levels); PSNR and SSIM with max_val = 1"


def _check_split(split):
    if split not in SPLIT_CHOICES:
        raise UserError(f"--split must be one of {', '.join(SPLIT_CHOICES)}, not {split!r}")


def _load_translators(model, trust_model=False, checkpoint=None):
    """{direction: Translator} for what `model` holds (its checkpoint number `checkpoint`, for
    a run directory), and {direction: why not} for the rest."""
    from tfcyclegan import inference

    ACCEPTS.identify(model)
    found, missing = {}, {}
    for direction in inference.DIRECTIONS:
        try:
            found[direction] = inference.load_translator(
                model, direction, trust_model=trust_model, checkpoint=checkpoint
            )
        except UserError as error:
            missing[direction] = str(error)
    if not found:
        raise UserError(missing["a2b"])
    return found, missing


def _check_memory(count, image_size):
    """Refuse, before any image is decoded, an evaluation whose images would not fit in MAX_IMAGE_BYTES."""
    held = HELD_COPIES * count * image_size * image_size * 3 * 4
    if held > MAX_IMAGE_BYTES:
        fits = max(MIN_IMAGE_SIZE, int((MAX_IMAGE_BYTES / (HELD_COPIES * count * 12)) ** 0.5) // 4 * 4)
        raise UserError(
            f"evaluating {count} images at {image_size}px holds {held / 2**30:.1f} GiB of images (real, translated "
            f"and reconstructed, float32), over the {MAX_IMAGE_BYTES >> 30} GiB evaluate allows; pass --image-size "
            f"{fits} or less"
        )


def held_out(files):
    """The seeded HOLDOUT_FRACTION of `files` (sorted) the classifier never trains on."""
    import numpy as np

    files = sorted(str(p) for p in files)
    count = round(len(files) * HOLDOUT_FRACTION) if len(files) > 1 else 0
    picks = np.random.default_rng(0).permutation(len(files))[:count]
    return sorted(files[i] for i in picks)


def _splits(domain, split, label, log):
    """(evaluation images, classifier training files, classifier scoring files, where the
    evaluation images come from) for one domain.

    With --split test, the images splits.shown picks: the test images, scored by a
    classifier trained on the training images. Otherwise HOLDOUT_FRACTION of the training
    images is held out from the classifier and scores it; --split test then evaluates on
    those held-out images, --split train on all training images.
    """
    from tfcyclegan.data.splits import TEST, readable, shown

    train = sorted(str(p) for p in domain.train_files)
    test, source = shown(domain)
    if split == "test" and source == TEST:
        files = readable(test, "test", label, domain, log)
        return files, train, files, "test"
    held = held_out(train)
    rest = sorted(set(train) - set(held))
    if split == "train":
        files = readable(train, "training", label, domain, log)
        return files, rest, sorted(set(held) & set(files)), "train"
    if not held:
        log(
            f"note: domain {label} ({domain.name}) has no test split and too few images to hold some out; "
            "evaluating on its training images"
        )
        return readable(train, "training", label, domain, log), train, [], "train"
    log(
        f"note: domain {label} ({domain.name}) has no test split; evaluating on a held-out "
        f"{HOLDOUT_FRACTION:.0%} of its training images ({len(held)} of {len(train)}), "
        "which the domain classifier does not train on"
    )
    files = readable(held, "held-out", label, domain, log)
    return files, rest, files, f"held-out {HOLDOUT_FRACTION:.0%} of train"


def _ground_truth(files, translations, sources, image_size):
    from tfcyclegan.data import demo, pipeline
    from tfcyclegan.quality import metrics

    truths = pipeline.make_eval_batch([demo.ground_truth_path(p) for p in files], image_size, len(files))
    return metrics.ground_truth_metrics(sources, translations, truths)


def _ground_truth_section(domains, splits, files, reals, fakes, image_size):
    """The ground_truth section: G(a) against b* and F(b) against a* (None for a direction
    not translated, `fakes` None), for the test splits of demo:flat and demo:striped."""
    a, b = domains
    if not (a.name.startswith("demo:") and b.name.startswith("demo:") and a.name != b.name):
        return {"unavailable": "exact counterparts exist only between demo:flat and demo:striped"}
    if splits != ("test", "test"):
        return {"unavailable": "the demo training splits are unpaired; use --split test"}
    return {
        direction: None if fake is None else _ground_truth(domain_files, fake, real, image_size)
        for direction, domain_files, real, fake in zip(("a2b", "b2a"), files, reals, fakes)
    }


def _fid_kid(make_features, images, log):
    """The fid_kid section for {"real_a", "real_b", "fake_a", "fake_b": image batch or None};
    `make_features()` gives the feature extractor (metrics.InceptionFeatures)."""
    from tfcyclegan.quality import metrics

    real_a, real_b = images["real_a"], images["real_b"]
    if min(len(real_a), len(real_b)) < 2:  # covariances and unbiased MMD need two images per set
        return {"unavailable": f"needs at least 2 images per domain, got A {len(real_a)} and B {len(real_b)}"}
    try:
        features = make_features()
    except UserError as error:
        return {"unavailable": str(error)}
    log(
        f"InceptionV3 features ({features.source} weights) of {len(real_a) + len(real_b)} real and the translated images"
    )
    feats = {name: features(batch) for name, batch in images.items() if batch is not None}

    def pair(fake, real):
        kid, kid_std = metrics.kid(feats[fake], feats[real])
        return {"fid": metrics.fid(feats[fake], feats[real]), "kid": kid, "kid_std": kid_std}

    result = {"weights": features.source, "input_size": features.input_size}
    result["a2b"] = pair("fake_b", "real_b") if "fake_b" in feats else None
    result["b2a"] = pair("fake_a", "real_a") if "fake_a" in feats else None
    # The untranslated images scored the same way: what an identity translator gets.
    result["identity_a2b"] = pair("real_a", "real_b")
    result["identity_b2a"] = pair("real_b", "real_a")
    return result


def _classifier(*, trained, scored, files, real, fakes, image_size, cache, log):
    """The classifier section: trained on the `trained` files (A, B), its accuracy measured
    on the `scored` real images (none of them trained on; `real` holds the batches of
    `files`, which they often are), fooling rates of `fakes` (G(a), F(b)) when it is accurate."""
    from tfcyclegan.data import pipeline
    from tfcyclegan.quality import classifier

    verdict = {"min_accuracy": classifier.MIN_ACCURACY, "scored_on": {"a": len(scored[0]), "b": len(scored[1])}}
    if min(len(s) for s in scored) < MIN_SCORED:
        # Scoring the classifier on its own training images would report a perfect score.
        verdict.update(weights=None, cached=False, accuracy=None, accuracy_a=None, accuracy_b=None, meaningful=False)
        verdict["fooling_a2b"] = verdict["fooling_b2a"] = None
        verdict["unavailable"] = (
            f"classifier not measured: only {len(scored[0])} + {len(scored[1])} real images it does not train on "
            f"(at least {MIN_SCORED} per domain needed); give more images or a test split"
        )
        return verdict
    judge, path, cached = classifier.load_or_train(*trained, image_size, cache_dir=cache, log=log)
    batches = [r if s == f else pipeline.make_eval_batch(s, image_size, len(s)) for s, f, r in zip(scored, files, real)]
    verdict.update(weights=path, cached=cached, **judge.accuracy(*batches))
    rates = judge.fooling_rates(*fakes)
    verdict["meaningful"] = verdict["accuracy"] >= classifier.MIN_ACCURACY
    if verdict["meaningful"]:
        verdict["fooling_a2b"], verdict["fooling_b2a"] = rates["a2b"], rates["b2a"]
    else:
        verdict["fooling_a2b"] = verdict["fooling_b2a"] = None
        verdict["unavailable"] = (
            f"fooling rate not meaningful: the classifier tells real A from real B with only "
            f"{verdict['accuracy']:.1%} accuracy (< {classifier.MIN_ACCURACY:.0%})"
        )
    return verdict


def evaluate(model, trust_model=False, checkpoint=None, **options):
    """Evaluate the model at `model` (any kind of ACCEPTS) on `split` images of two domains.

    Loads what directions `model` holds (inference.load_translator; `checkpoint` picks a
    run directory's checkpoint by number) and hands them to evaluate_translators with
    `options` (its keyword options but `missing` and `source`); see there for the options
    and the result. `trust_model` is load_translator's.
    """
    _check_split(options.get("split", "test"))
    translators, missing = _load_translators(model, trust_model, checkpoint)
    source = str(model) if checkpoint is None else f"{model} checkpoint {checkpoint}"
    return evaluate_translators(translators, missing=missing, source=source, **options)


def evaluate_checkpoints(run_dir, log=report.note, trust_model=False, **options):
    """Evaluate every intact checkpoint of run directory `run_dir`, oldest first, as `evaluate`
    does with `options` but without FID/KID (its Inception pass would dominate the time).

    Returns {"model", "checkpoints": [row, ...]}, each row the checkpoint's number, step and
    epoch, cycle PSNR/SSIM both ways, the classifier's accuracy and fooling rates (None
    where it is not accurate enough) and the health figures, and {"results": full results}.
    """
    from tfcyclegan.runs import checkpoints, rundir
    from tfcyclegan.runs.layout import RunLayout

    _check_split(options.get("split", "test"))
    layout = RunLayout(run_dir)
    if not (layout.config.is_file() and layout.checkpoints.is_dir()):
        raise UserError(f"--checkpoints all takes a run directory (config.json + checkpoints/); {run_dir} is not one")
    config = rundir.load_config(run_dir)
    numbers = checkpoints.intact(layout.checkpoints)
    if not numbers:
        raise UserError(f"{run_dir} has no intact checkpoint; train it with: tfcyclegan fit --run-dir {run_dir}")
    rows, results = [], []
    for i, number in enumerate(numbers, 1):
        log(f"checkpoint {number} ({i} of {len(numbers)})")
        translators, missing = _load_translators(run_dir, trust_model, number)
        result = evaluate_translators(
            translators,
            missing=missing,
            source=f"{run_dir} checkpoint {number}",
            log=log,
            sections=CHECKPOINT_SECTIONS,
            **options,
        )
        step = rundir.checkpoint_step(str(layout.checkpoint(number)))
        rows.append({"checkpoint": number, "step": step, "epoch": step / config.steps_per_epoch, **_summary(result)})
        results.append(result)
    return {"model": str(run_dir), "checkpoints": rows, "results": results}


def _summary(result):
    """The numbers of one checkpoint's row in `evaluate_checkpoints`."""
    cycle, judge, health = result["cycle"], result["classifier"], result["health"]
    row = {}
    for side in ("a", "b"):
        numbers = cycle.get(side) or {}
        row[f"psnr_{side}"], row[f"ssim_{side}"] = numbers.get("psnr"), numbers.get("ssim")
    row["classifier_accuracy"] = judge["accuracy"]
    row["fooling_a2b"], row["fooling_b2a"] = judge["fooling_a2b"], judge["fooling_b2a"]
    return {**row, **{k: v for k, v in health.items() if k != "unavailable"}}


def _health(real_a, fake_b, real_b, fake_a):
    """The health section: fit's generator checks (training.health) on the evaluation images."""
    from tfcyclegan.training import health

    if min(len(real_a), len(real_b)) < 2:
        return {"unavailable": "needs at least 2 images per domain"}
    section = {"domain_gap": health.domain_gap(real_a, real_b)}
    for d, real, fake in (("a2b", real_a, fake_b), ("b2a", real_b, fake_a)):
        if fake is not None:
            section[f"inversion_{d}"] = health.luminance_correlation(real, fake)
            section[f"identity_{d}"] = health.input_distance(real, fake)
            section[f"collapse_{d}"] = health.collapse_ratio(real, fake)
    return section


def evaluate_translators(
    translators,
    *,
    missing=None,
    source="in-memory translators",
    domain_a=None,
    domain_b=None,
    split="test",
    data_root=None,
    image_size=None,
    inception_weights="imagenet",
    inception_cache=None,
    features=None,
    classifier_cache=None,
    sections=SECTIONS,
    log=report.note,
):
    """Evaluate {direction: inference.Translator} (a2b is G, b2a is F) on `split` images of two domains.

    `missing` maps each absent direction to why it is absent. Domains and image size
    default to those the translators' info names (training config or export metadata).
    Images are resized (bicubic, no crop) to image_size. `inception_weights` is
    "imagenet" (downloaded once into `inception_cache`, default Keras' cache), a local
    weights file or None (random weights: plumbing only). `features` replaces InceptionV3
    for FID and KID: a callable from an (N, H, W, 3) batch in [-1, 1] to (N, d) features,
    with attributes `source` and `input_size`. `classifier_cache` is the domain
    classifier's cache folder (classifier.load_or_train). Only the SECTIONS in `sections` are
    computed (fit ends a demo run with the ground truth alone). Progress and notes go to
    `log`. Returns a JSON-ready dict (see the module docstring); `to_json` writes non-finite
    numbers as strings.
    """
    from tfcyclegan.data import datasets, pipeline
    from tfcyclegan.quality import metrics

    _check_split(split)
    missing = dict(missing or {})
    info = next(iter(translators.values())).info
    domain_a, domain_b = domain_a or info.domain_a, domain_b or info.domain_b
    data_root = data_root or info.data_root  # where the training run found named domains
    if not domain_a or not domain_b:
        raise UserError(f"{source} does not say which domains it translates; pass --domain-a and --domain-b")
    image_size = int(image_size or info.image_size or 256)
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise UserError(f"--image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} (got {image_size})")
    a, b = datasets.resolve_domains(domain_a, domain_b, data_root)
    files_a, train_a, score_a, split_a = _splits(a, split, "A", log)
    files_b, train_b, score_b, split_b = _splits(b, split, "B", log)
    used = split_a if split_a == split_b else f"A {split_a}, B {split_b}"
    _check_memory(len(files_a) + len(files_b), image_size)
    log(f"evaluating {source} on {len(files_a)} + {len(files_b)} {used} images at {image_size}px")
    real_a = pipeline.make_eval_batch(files_a, image_size, len(files_a))
    real_b = pipeline.make_eval_batch(files_b, image_size, len(files_b))
    g, f = translators.get("a2b"), translators.get("b2a")
    fake_b = g(real_a) if g else None
    fake_a = f(real_b) if f else None

    result = {
        "model": source,
        "kind": next(iter(translators.values())).kind,
        "directions": sorted(translators),
        "missing_directions": missing,
        "domain_a": {"spec": domain_a, "root": a.root, "images": len(files_a), "images_from": split_a},
        "domain_b": {"spec": domain_b, "root": b.root, "images": len(files_b), "images_from": split_b},
        "split": used,
        "split_requested": split,
        "image_size": image_size,
        "scale": SCALE,
    }

    if "cycle" in sections and g and f:
        result["cycle"] = {"a": metrics.cycle_metrics(real_a, f(fake_b)), "b": metrics.cycle_metrics(real_b, g(fake_a))}
    elif "cycle" in sections:
        result["cycle"] = {"unavailable": f"needs both directions; {next(iter(missing.values()))}"}

    if "classifier" in sections:
        result["classifier"] = _classifier(
            trained=(train_a, train_b), scored=(score_a, score_b), files=(files_a, files_b), real=(real_a, real_b),
            fakes=(fake_b, fake_a), image_size=image_size, cache=classifier_cache, log=log,
        )  # fmt: skip

    def make_features():
        if features is not None:
            return features
        return metrics.InceptionFeatures(inception_weights, cache_dir=inception_cache)

    if "fid_kid" in sections:
        images = {"real_a": real_a, "real_b": real_b, "fake_a": fake_a, "fake_b": fake_b}
        result["fid_kid"] = _fid_kid(make_features, images, log)

    if "health" in sections:
        result["health"] = _health(real_a, fake_b, real_b, fake_a)

    if "ground_truth" in sections:
        result["ground_truth"] = _ground_truth_section(
            (a, b), (split_a, split_b), (files_a, files_b), (real_a, real_b), (fake_b, fake_a), image_size
        )
    return result


def _jsonable(value):
    import numpy as np

    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": strict JSON has no such numbers
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def to_json(result):
    """Strict JSON text of an evaluate() result; +inf PSNR (exact match) becomes the string "inf"."""
    return json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n"


def write_json(result, path):
    """Write to_json(result) to `path` (~ expanded) whole or not at all; a UserError when it cannot."""
    fsutil.write_for_user(path, to_json(result), "choose another --json file")
