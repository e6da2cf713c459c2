"""Health checks during `fit`: the ways a CycleGAN run fails silently, measured each epoch.

Once per epoch, on a fixed set of held-out images of each domain (`held_out`, recorded in
config.json), the callback `HealthCheck` measures for each generator (G: A -> B, "a2b";
F: B -> A, "b2a"):

- colour inversion: the Pearson correlation of the luminance of G(x) with that of x
  (`luminance_correlation`); a translation keeps light things light, an inverting
  generator (a known CycleGAN failure, official repository issues #1301, #91, #744) has r < 0;
- returning the input: mean |G(x) - x| (`input_distance`) while the colour histograms of
  the two domains' held-out images differ clearly (`domain_gap`): the paper's "sometimes
  we may even get the original images";
- collapse: the mean pairwise distance of the translations over that of the inputs
  (`collapse_ratio`): different inputs translated to nearly one image;
- a discriminator that has won: its loss (eq. 7 / 8) on the held-out real images and
  their translations near zero while the generator's adversarial loss against it,
  mean (D(G(x)) - 1)^2 (eq. 2), is high: the generator gets no useful gradient;
- cycle PSNR of F(G(x)) against x (`cycle_psnr`), logged only.

Every figure is a TensorBoard scalar under health/ and a column of health.csv. A check
that trips says so in one warning line (what it means, what to try), once, and again
only after it has cleared and returned (`new_warnings`). The thresholds are THRESHOLDS.
"""

import csv
import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfcyclegan.util import fsutil, report
from tfcyclegan.util.errors import first_line

HEALTH_FILE = "health.csv"
HELD_OUT_KEY = "health_images"  # the held-out images' key in config.json
HELD_OUT_COUNT = 8  # images per domain
DIRECTIONS = ("a2b", "b2a")
KINDS = ("inversion", "identity", "collapse", "discriminator")


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Where each check trips; images are on [-1, 1] as the networks see them."""

    # Luminance correlation of G(x) with x at or below this: inverted. A healthy
    # translation, even between very different domains, keeps r well above 0.
    inversion_correlation: float = -0.5
    # Mean |G(x) - x| below this (0.02 on [-1, 1] is 2.5 grey levels)...
    identity_distance: float = 0.02
    # ...while the domains' colour histograms differ by at least this total variation.
    domain_gap: float = 0.1
    # Translations' mean pairwise distance below this fraction of the inputs': collapsed.
    collapse_ratio: float = 0.2
    # An LSGAN discriminator at chance has loss 0.25 (eq. 7 halved); below this it has won...
    discriminator_loss: float = 0.05
    # ...when the generator's adversarial loss against it is above this (1 when D is sure).
    adversarial_loss: float = 0.5


THRESHOLDS = Thresholds()


def luminance(images):
    """ITU-R BT.601 luma of (N, H, W, 3) images: (N, H, W)."""
    images = np.asarray(images, np.float64)
    return images @ np.array([0.299, 0.587, 0.114])


def luminance_correlation(inputs, outputs):
    """Mean over images of the Pearson correlation of the luminance of `outputs` with that of
    `inputs`, pixel by pixel; an image whose input or output is flat counts 0."""
    correlations = []
    for x, y in zip(luminance(inputs), luminance(outputs)):
        x, y = x.ravel() - x.mean(), y.ravel() - y.mean()
        scale = np.sqrt((x @ x) * (y @ y))
        correlations.append(float(x @ y / scale) if scale > 1e-12 else 0.0)
    return float(np.mean(correlations))


def input_distance(inputs, outputs):
    """Mean |output - input| over every pixel and channel."""
    return float(np.mean(np.abs(np.asarray(outputs, np.float64) - np.asarray(inputs, np.float64))))


def colour_histogram(images, bins=16):
    """Each channel's histogram of `images` on [-1, 1], normalised: (3, bins)."""
    images = np.asarray(images)
    counts = [np.histogram(images[..., c], bins=bins, range=(-1.0, 1.0))[0] for c in range(3)]
    return np.array(counts, np.float64) / images[..., 0].size


def domain_gap(images_a, images_b):
    """Total variation distance between the two sets' colour histograms, averaged over the
    channels: 0 for sets of one colour distribution, 1 for disjoint ones."""
    return float(np.mean(0.5 * np.abs(colour_histogram(images_a) - colour_histogram(images_b)).sum(axis=1)))


def spread(images):
    """Mean L1 distance between every two images of a set."""
    images = np.asarray(images, np.float64).reshape(len(images), -1)
    pairs = [np.mean(np.abs(images[i] - images[j])) for i in range(len(images)) for j in range(i + 1, len(images))]
    return float(np.mean(pairs))


def collapse_ratio(inputs, outputs):
    """spread(outputs) / spread(inputs): 1 keeps the inputs' variety, 0 maps all to one image."""
    return spread(outputs) / max(spread(inputs), 1e-12)


def adversarial_loss(scores):
    """The generator's LSGAN loss against a discriminator's `scores` of its fakes, eq. (2): mean (D(G(x)) - 1)^2."""
    return float(np.mean((np.asarray(scores, np.float64) - 1.0) ** 2))


def discriminator_loss(real_scores, fake_scores):
    """A discriminator's LSGAN loss, eq. (7) / (8) halved: (mean (D(y) - 1)^2 + mean D(G(x))^2) / 2."""
    real, fake = (np.asarray(s, np.float64) for s in (real_scores, fake_scores))
    return float(0.5 * (np.mean((real - 1.0) ** 2) + np.mean(fake**2)))


def cycle_psnr(inputs, cycled):
    """Mean over images of the PSNR of `cycled` against `inputs`, on [0, 1] pixels (max 1), in dB."""
    error = (np.asarray(cycled, np.float64) - np.asarray(inputs, np.float64)) / 2.0
    mse = np.maximum(np.mean(error**2, axis=(1, 2, 3)), 1e-10)
    return float(np.mean(10.0 * np.log10(1.0 / mse)))


# Which networks a direction's figures are about: (generator, its discriminator, input domain).
NETWORK_NAMES = {"a2b": ("G (A -> B)", "D_Y", "A"), "b2a": ("F (B -> A)", "D_X", "B")}


def figures(real, translated, cycled, fake_scores, real_scores):
    """The health figures of one check, by name. Each argument maps a direction ("a2b",
    "b2a") to: the held-out inputs, their translations, their reconstructions, and the
    scores the direction's discriminator (D_Y for a2b) gives the translations and the
    real images of its own domain (the other direction's inputs)."""
    values = {"domain_gap": domain_gap(real["a2b"], real["b2a"])}
    for d in DIRECTIONS:
        values[f"inversion_{d}"] = luminance_correlation(real[d], translated[d])
        values[f"identity_{d}"] = input_distance(real[d], translated[d])
        values[f"collapse_{d}"] = collapse_ratio(real[d], translated[d])
        values[f"adversarial_{d}"] = adversarial_loss(fake_scores[d])
        values[f"discriminator_loss_{d}"] = discriminator_loss(real_scores[d], fake_scores[d])
        values[f"cycle_psnr_{d}"] = cycle_psnr(real[d], cycled[d])
    return values


def tripped(values, thresholds=THRESHOLDS):
    """The checks `values` (see `figures`) trip, as "<kind>_<direction>" names, in KINDS order."""
    found = []
    for kind in KINDS:
        for d in DIRECTIONS:
            if kind == "inversion":
                bad = values[f"inversion_{d}"] <= thresholds.inversion_correlation
            elif kind == "identity":
                bad = values[f"identity_{d}"] < thresholds.identity_distance and values["domain_gap"] >= (
                    thresholds.domain_gap
                )
            elif kind == "collapse":
                bad = values[f"collapse_{d}"] < thresholds.collapse_ratio
            else:
                bad = (
                    values[f"discriminator_loss_{d}"] < thresholds.discriminator_loss
                    and values[f"adversarial_{d}"] > thresholds.adversarial_loss
                )
            if bad:
                found.append(f"{kind}_{d}")
    return found


def warning(name, values, epoch, count):
    """The one warning line of tripped check `name`: what it means and what to try."""
    kind, d = name.rsplit("_", 1)
    generator, discriminator, domain = NETWORK_NAMES[d]
    x = domain.lower()
    head = f"warning: epoch {epoch}: {generator}"
    if kind == "inversion":
        return (
            f"{head} inverts colours: the luminance of its output is anti-correlated with its input's "
            f"(r = {values[f'inversion_{d}']:.2f} on {count} held-out images), which the cycle loss cannot undo; "
            "train again with a higher --lambda-identity (the official FAQ's advice; 5 is the default) or another --seed"
        )
    if kind == "identity":
        return (
            f"{head} returns its input: |G({x}) - {x}| = {values[f'identity_{d}']:.3f} on [-1, 1] while the two "
            f"domains' colours differ (gap {values['domain_gap']:.2f}); lower --lambda-identity (e.g. 0.5), or "
            "give it more epochs before judging"
        )
    if kind == "collapse":
        ratio = values[f"collapse_{d}"]
        closer = f"{1 / ratio:.0f}x closer" if ratio > 0.01 else "all but identical, far closer"
        return (
            f"{head} collapses: its translations of {count} different held-out images are {closer} to each "
            "other than the images are (mode collapse); resume from an earlier checkpoint (--keep-every) with a lower --lr, or train again with "
            "another --seed"
        )
    return (
        f"warning: epoch {epoch}: {discriminator} has won: its loss on held-out images is "
        f"{values[f'discriminator_loss_{d}']:.3f} while {generator}'s adversarial loss against it is "
        f"{values[f'adversarial_{d}']:.2f}, so the generator learns nothing from it; train again with a weaker "
        "discriminator (--disc-layers 2 or a lower --ndf) or a lower --lr"
    )


def new_warnings(now, before):
    """The tripped checks to warn about: those in `now` that were not tripped at the previous check."""
    return [name for name in now if name not in set(before)]


def held_out(domain, count=HELD_OUT_COUNT, seed=0):
    """(held-out files, training files) of a datasets.Domain: `count` of its test images
    (seeded pick), else, when it has more than 4 x `count` training images, `count` of those,
    which then leave training; else its first `count` training images, which stay in it."""
    rng = np.random.default_rng(seed)
    train = sorted(str(p) for p in domain.train_files)
    if domain.test_files:
        test = sorted(str(p) for p in domain.test_files)
        return sorted(test[i] for i in rng.permutation(len(test))[:count]), train
    if len(train) > 4 * count:
        picks = {train[i] for i in rng.permutation(len(train))[:count]}
        return sorted(picks), [p for p in train if p not in picks]
    return train[:count], train


class HealthCheck(keras.callbacks.Callback):
    """Each epoch: the health figures on the held-out `real_a`, `real_b` (float32 in [-1, 1]),
    scalars health/<figure> in `writer`, a row of <run_dir>/health.csv, and a warning line
    for each check that trips anew (the previous row's trips are remembered across resumes)."""

    def __init__(self, run_dir, writer, real_a, real_b, thresholds=THRESHOLDS):
        super().__init__()
        self.path = Path(run_dir) / HEALTH_FILE
        self.writer = writer
        self.real = {"a2b": np.asarray(real_a), "b2a": np.asarray(real_b)}
        self.thresholds = thresholds

    def measure(self):
        """The figures of the model as it stands."""
        model = self.model
        generators = {"a2b": (model.generator_g, model.generator_f), "b2a": (model.generator_f, model.generator_g)}
        judges = {"a2b": model.discriminator_y, "b2a": model.discriminator_x}
        translated, cycled, fake_scores, real_scores = {}, {}, {}, {}
        other = {"a2b": "b2a", "b2a": "a2b"}
        for d, (forward, backward) in generators.items():
            fake = forward(self.real[d], training=False)
            translated[d] = np.asarray(fake, np.float32)
            cycled[d] = np.asarray(backward(fake, training=False), np.float32)
            fake_scores[d] = np.asarray(judges[d](fake, training=False), np.float32)
            real_scores[d] = np.asarray(judges[d](self.real[other[d]], training=False), np.float32)
        return figures(self.real, translated, cycled, fake_scores, real_scores)

    def previous(self, epoch):
        """The checks tripped at the last check before `epoch` (1-based), from health.csv."""
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = [row for row in csv.DictReader(f) if int(row["epoch"]) < epoch]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, csv.Error) as error:
            report.note(f"note: cannot read {self.path} ({first_line(error)}); its warnings may repeat")
            return []
        return rows[-1].get("tripped", "").split() if rows else []

    def on_epoch_end(self, epoch, logs=None):
        values = self.measure()
        now = tripped(values, self.thresholds)
        for name in new_warnings(now, self.previous(epoch + 1)):
            report.note(warning(name, values, epoch + 1, len(self.real[name.rsplit("_", 1)[1]])))
        with self.writer.as_default(step=epoch + 1):
            for name, value in values.items():
                tf.summary.scalar(f"health/{name}", value)
        self._write_row(epoch + 1, values, now)

    def _write_row(self, epoch, values, now):
        rows = []
        if self.path.exists():
            try:
                with open(self.path, newline="", encoding="utf-8") as f:
                    rows = [row for row in csv.DictReader(f) if int(row["epoch"]) < epoch]
            except (OSError, ValueError, KeyError, TypeError, csv.Error):
                rows = []  # `previous` said so; the file begins again
        rows.append({"epoch": epoch, **{k: f"{v:.6g}" for k, v in values.items()}, "tripped": " ".join(now)})
        fields = list(rows[-1])
        with fsutil.replacing(self.path) as partial, open(partial, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", restval="")
            writer.writeheader()
            writer.writerows(rows)
