"""Pretrained PyTorch CycleGAN generators as tfcyclegan Keras generators.

The official implementation (junyanz/pytorch-CycleGAN-and-pix2pix) publishes its
generators as .pth state dicts of define_G(3, 3, 64, 'resnet_9blocks', 'instance',
use_dropout=False): `model.1` c7s1-64, `model.4` / `model.7` the stride-2
convolutions, `model.10`.. residual blocks (`conv_block.1`, `conv_block.5`; with
dropout the second is `conv_block.6`), then two ConvTranspose2d(k3, s2, p1,
output_padding 1) and `model.<last>` c7s1-3. The architecture is read from the
tensors in file order: the number of blocks from the number of convolutions, ngf from
the first one's shape, affine instance norm from per-channel weights after a
convolution, the dropout layout from the block's key numbering; so forks that renamed
modules but kept the layer order import too. Weights map as

    Conv2d          (out, in, kh, kw) -> Conv2D kernel          (kh, kw, in, out)
    ConvTranspose2d (in, out, kh, kw) -> Conv2DTranspose kernel (kh, kw, out, in)

(both libraries correlate, so no spatial flip), and tfcyclegan's generator has
PyTorch's pixel alignment (tfcyclegan.core.networks), so the outputs agree with PyTorch's
to float32 rounding (docs/pretrained.md).
"""

import collections
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tfcyclegan.models import modeldir, torch_state
from tfcyclegan.models.metadata import ModelMetadata
from tfcyclegan.util import report
from tfcyclegan.util.errors import UserError, first_line
from tfcyclegan.util.fsutil import sha256
from tfcyclegan.version import __version__

# scripts/download_cyclegan_model.sh of the official repository; the file of each
# name holds one generator, translating as the name says (style_X: photo -> X).
OFFICIAL = (
    "apple2orange",
    "orange2apple",
    "summer2winter_yosemite",
    "winter2summer_yosemite",
    "horse2zebra",
    "zebra2horse",
    "monet2photo",
    "style_monet",
    "style_cezanne",
    "style_ukiyoe",
    "style_vangogh",
    "sat2map",
    "map2sat",
    "cityscapes_photo2label",
    "cityscapes_label2photo",
    "facades_photo2label",
    "facades_label2photo",
    "iphone2dslr_flower",
)
# Official files that translate the other way of each other.
REVERSE_PAIRS = (
    ("apple2orange", "orange2apple"),
    ("summer2winter_yosemite", "winter2summer_yosemite"),
    ("horse2zebra", "zebra2horse"),
    ("monet2photo", "style_monet"),
    ("map2sat", "sat2map"),
    ("cityscapes_photo2label", "cityscapes_label2photo"),
    ("facades_photo2label", "facades_label2photo"),
)
REVERSE = {a: b for pair in REVERSE_PAIRS for a, b in (pair, pair[::-1])}
OFFICIAL_PREFIX = "official:"
OFFICIAL_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{name}.pth"
# The official repository publishes no checksums; a name gets one here once a
# verified SHA-256 is known. Until then `--sha256` pins a download.
OFFICIAL_SHA256 = {}
CACHE_SUBDIR = "tfcyclegan_pretrained"
# Keys the official loader drops (PyTorch <= 0.3 instance norm kept running stats).
RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
SUPPORTED = "a CycleGAN ResNet generator (official resnet_6blocks / resnet_9blocks, instance norm)"


@dataclass(frozen=True)
class Architecture:
    """What the tensors say about a ResNet generator: ResnetGenerator's constructor options."""

    ngf: int
    n_blocks: int
    affine: bool
    dropout: bool

    def build(self, name=None):
        from tfcyclegan.core.networks import ResnetGenerator

        return ResnetGenerator(
            ngf=self.ngf, n_blocks=self.n_blocks, affine=self.affine, dropout=self.dropout, name=name
        )


@dataclass
class _Layer:
    """One module of the file with weights: a convolution (4-D weight) or an affine norm."""

    name: str
    weight: tuple  # shapes
    bias: tuple | None
    stats: bool = False  # it also had running statistics


def _strip(key):
    return key[len("module.") :] if key.startswith("module.") else key


def _layers(shapes, path):
    """The file's modules with weights, in file order, `module.` prefixes and running stats dropped."""
    modules = {}
    for key, shape in shapes.items():
        key = _strip(key)
        prefix, _, param = key.rpartition(".")
        entry = modules.setdefault(prefix, {})
        if param in RUNNING_STATS:
            entry["stats"] = True
        elif param in ("weight", "bias"):
            entry[param] = tuple(shape)
        else:
            raise UserError(f"{path} has tensor {key}, which {SUPPORTED} does not have; supported: {SUPPORTED}")
    layers = []
    for prefix, entry in modules.items():
        if "weight" not in entry:
            if "bias" in entry:
                raise UserError(f"{path}: {prefix} has a bias but no weight; supported: {SUPPORTED}")
            continue  # stats of a non-affine instance norm
        layers.append(_Layer(prefix, entry["weight"], entry.get("bias"), entry.get("stats", False)))
    return layers


def _kind(path, convs):
    """Why a file whose convolutions are not the ResNet generator's is not one."""
    shapes = [c.weight for c in convs]
    if shapes and all(s[2:] == (4, 4) for s in shapes):
        if shapes[-1][0] == 1:
            return f"{path} holds a PatchGAN discriminator (4x4 convolutions ending in one channel), not a generator"
        return f"{path} holds a U-Net generator (4x4 convolutions), not a ResNet one"
    return f"{path} is not a ResNet generator (convolutions shaped {', '.join(str(s) for s in shapes[:4])}...)"


def _dropout(convs):
    """The dropout layout: the first block's second convolution one module further on (conv_block.6, not .5)."""
    first, second = convs[3].name, convs[4].name
    a, b = re.match(r"(.*)\.(\d+)$", first), re.match(r"(.*)\.(\d+)$", second)
    return bool(a and b and a.group(1) == b.group(1) and int(b.group(2)) - int(a.group(2)) == 5)


def architecture(shapes, path="the state dict"):
    """The Architecture of a ResNet generator state dict, from its tensors' shapes alone
    ({name: shape}, in file order), so that a file is judged before its weights are read.

    Its ngf and blocks are held to `fit`'s bounds (--ngf, --blocks), which every consumer
    of a model directory applies: what import accepts, translate, export and fit take.
    Every convolution and affine norm must have its bias (the official generator's all
    do; a missing one is named, never taken as zero). Anything that is not such a
    generator is a UserError naming what it is.
    """
    from tfcyclegan.runs.config import value_problem

    layers = _layers(shapes, path)
    convs = [layer for layer in layers if len(layer.weight) == 4]
    if not convs:
        raise UserError(f"{path} has no convolution weights, so it is no generator; supported: {SUPPORTED}")
    if len(convs) < 8 or len(convs) % 2 or convs[0].weight[2:] != (7, 7):
        raise UserError(f"{_kind(path, convs)}; supported: {SUPPORTED}")
    ngf, n_blocks = convs[0].weight[0], (len(convs) - 6) // 2
    problems = [value_problem(option, value, name) for option, value, name in
                (("ngf", ngf, "ngf"), ("blocks", n_blocks, "blocks"))]  # fmt: skip
    problems = [problem for problem in problems if problem]
    if problems:
        raise UserError(
            f"{path} is a ResNet generator with ngf {ngf} and {n_blocks} blocks: {'; '.join(problems)}, as for "
            "`tfcyclegan fit`, which trains every model tfcyclegan runs; nothing was read or written"
        )
    c = 4 * ngf
    expected = (
        [(ngf, 3, 7, 7), (2 * ngf, ngf, 3, 3), (c, 2 * ngf, 3, 3)]
        + [(c, c, 3, 3)] * (2 * n_blocks)
        + [(c, 2 * ngf, 3, 3), (2 * ngf, ngf, 3, 3), (3, ngf, 7, 7)]
    )
    for conv, shape in zip(convs, expected):
        if conv.weight != shape:
            raise UserError(
                f"{path}: {conv.name}.weight is {conv.weight} where a ResNet generator with ngf {ngf} "
                f"and {n_blocks} blocks has {shape} (3 input and 3 output channels); supported: {SUPPORTED}"
            )
    norms = [layer for layer in layers if len(layer.weight) == 1]
    if len(layers) != len(convs) + len(norms):
        odd = next(layer for layer in layers if len(layer.weight) not in (1, 4))
        raise UserError(f"{path}: {odd.name}.weight is {odd.weight}; supported: {SUPPORTED}")
    affine = bool(norms)
    if norms and any(conv.bias is None for conv in convs) and any(n.stats for n in norms):
        raise UserError(f"{path} is a generator with batch norm; supported: {SUPPORTED}")
    if affine:
        # An affine norm after every convolution but the last, in that order.
        order = [len(layer.weight) for layer in layers]
        if order != [4, 1] * (len(convs) - 1) + [4]:
            raise UserError(
                f"{path} has {len(norms)} normalization layers with weights for {len(convs)} convolutions, not one "
                f"after each but the last; supported: {SUPPORTED}"
            )
    transposed = {len(convs) - 3, len(convs) - 2}
    index, out = 0, None
    for layer in layers:
        if len(layer.weight) == 4:
            out = layer.weight[1] if index in transposed else layer.weight[0]
            index += 1
        elif layer.weight != (out,):
            raise UserError(
                f"{path}: {layer.name}.weight is {layer.weight} after a convolution of {out} channels; "
                f"supported: {SUPPORTED}"
            )
        if layer.bias is None:
            raise UserError(
                f"{path}: {layer.name}.bias is missing; every layer of {SUPPORTED} has one (a file without it is "
                f"not such a generator, or was cut short); {torch_state.FIX}"
            )
        if layer.bias != (out,):
            raise UserError(f"{path}: {layer.name}.bias is {layer.bias} for {out} channels; supported: {SUPPORTED}")
    return Architecture(int(ngf), int(n_blocks), affine, _dropout(convs))


def _check_finite(state, path):
    """Every weight a number: NaN or infinity would make every output NaN (saved as black)."""
    for key, value in state.items():
        if _strip(key).rpartition(".")[2] in ("weight", "bias") and not np.all(np.isfinite(value)):
            bad = value[~np.isfinite(value)]
            raise UserError(
                f"{path}: tensor {key} holds {bad.size} non-finite values (first {bad.flat[0]}), so the generator "
                "computes nothing; a training run that diverged saves such weights: use an earlier checkpoint"
            )


def infer(state, path="the state dict"):
    """(Architecture, [weights of each Keras layer]) of a ResNet generator state dict.

    The architecture is architecture()'s, from the shapes; every weight must be finite.
    The returned list holds, in the Keras generator's weight order, each convolution's
    [kernel, bias] in Keras layout and, with affine norm, each norm's [gamma, beta].
    """
    shapes = collections.OrderedDict((key, np.shape(value)) for key, value in state.items())
    found = architecture(shapes, path)
    _check_finite(state, path)
    values = {_strip(key): np.asarray(value, np.float32) for key, value in state.items()}
    weights = []
    for layer in _layers(shapes, path):
        weight, bias = values[f"{layer.name}.weight"], values[f"{layer.name}.bias"]
        # (out, in, kh, kw) and ConvTranspose2d's (in, out, kh, kw) both become (kh, kw, ., .).
        weights.append([weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight, bias])
    return found, weights


def _keras_layers(generator):
    """The generator's layers that hold weights, in weight order."""
    from keras import layers

    from tfcyclegan.core.networks import InstanceNormalization, ResidualBlock

    found = []
    for layer in generator.stack:
        for inner in layer.body if isinstance(layer, ResidualBlock) else [layer]:
            if isinstance(inner, (layers.Conv2D, layers.Conv2DTranspose)) or (
                isinstance(inner, InstanceNormalization) and inner.affine
            ):
                found.append(inner)
    return found


def to_keras(state, path="the state dict", name=None):
    """(ResnetGenerator with the state dict's weights, its Architecture)."""
    found, weights = infer(state, path)
    generator = found.build(name)
    generator(np.zeros((1, 16, 16, 3), np.float32))
    targets = _keras_layers(generator)
    for layer, values in zip(targets, weights, strict=True):
        layer.set_weights(values)
    return generator, found


def official_name(source):
    """The official model name of `source` ("official:NAME"), or None for a file path."""
    if not str(source).startswith(OFFICIAL_PREFIX):
        return None
    name = str(source)[len(OFFICIAL_PREFIX) :]
    if name not in OFFICIAL:
        raise UserError(f"{source} is no official model; the names are: {', '.join(OFFICIAL)}")
    return name


def fetch_official(name, sha256_hex=None, cache_dir=None, log=report.note):
    """The local path of official model `name`, downloaded once into the Keras cache.

    Checked against `sha256_hex` or the pinned OFFICIAL_SHA256; with neither, the size
    and SHA-256 of what arrived are logged, to be recorded and pinned with --sha256.
    """
    import keras

    url = OFFICIAL_URL.format(name=name)
    pinned = sha256_hex or OFFICIAL_SHA256.get(name)
    try:
        with report.stdout_as_notes():
            local = keras.utils.get_file(
                fname=f"{name}.pth",
                origin=url,
                file_hash=pinned,
                hash_algorithm="sha256",
                cache_dir=cache_dir,
                cache_subdir=CACHE_SUBDIR,
            )
    except ValueError as error:
        if pinned and "corrupted" in str(error):
            raise UserError(
                f"official:{name} from {url} does not have SHA-256 {pinned}; the download is damaged or the file "
                "changed: check the --sha256 value, or download it yourself and import the file"
            ) from None
        raise UserError(f"cannot download official:{name} from {url}: {error}") from None
    except Exception as error:
        reason = getattr(error, "reason", None) or first_line(error)
        raise UserError(
            f"cannot download official:{name} from {url} ({reason}); offline? download that URL elsewhere and "
            f"run: tfcyclegan import {name}.pth"
        ) from None
    if not pinned:
        log(
            f"note: official:{name} has no published checksum: {Path(local).stat().st_size} bytes, SHA-256 "
            f"{sha256(local)} (recorded in metadata.json; pass --sha256 with it to pin)"
        )
    return Path(local)


def load_source(source, sha256_hex=None, cache_dir=None, log=report.note, name=None):
    """(generator, description for metadata.json) of a .pth file or an "official:NAME"."""
    official = official_name(source)
    path = fetch_official(official, sha256_hex, cache_dir, log) if official else Path(source).expanduser()
    try:
        digest = sha256(path)
    except FileNotFoundError:
        raise UserError(
            f"{source}: no such file; give a .pth file or official:NAME (one of {', '.join(OFFICIAL)})"
        ) from None
    except OSError as error:
        raise UserError(f"cannot read {source}: {first_line(error)}; give a .pth file or official:NAME") from None
    if sha256_hex and not official and digest != sha256_hex.lower():
        raise UserError(f"{path} has SHA-256 {digest}, not the --sha256 {sha256_hex} given; check the file")
    state = torch_state.read_state_dict(path, check=lambda shapes: architecture(shapes, path))
    generator, found = to_keras(state, path, name=name)
    described = {
        "source": f"{OFFICIAL_PREFIX}{official}" if official else path.name,
        "sha256": digest,
        "bytes": path.stat().st_size,
        "architecture": asdict(found),
    }
    if official:
        described["url"] = OFFICIAL_URL.format(name=official)
    return generator, described


def default_output(source):
    """saved_models/<name of the a2b source>/keras."""
    official = official_name(source)
    return Path("saved_models") / (official or Path(source).stem) / "keras"


def import_generators(a2b, b2a=None, output=None, sha256s=(), cache_dir=None, log=report.note):
    """Write a model directory from .pth files / official names; returns (folder, its ModelMetadata).

    `a2b` becomes generator_g.keras, `b2a` (optional) generator_f.keras; `sha256s`
    pins them in that order.
    """
    from tfcyclegan.models import publish  # TensorFlow, for its file errors

    sources = {"a2b": a2b, **({"b2a": b2a} if b2a else {})}
    reverse = REVERSE.get(official_name(a2b))
    if reverse and not b2a:
        log(f"note: official:{reverse} translates the other way; give it as B2A to import both directions")
    if len(sha256s) > len(sources):
        raise UserError(f"{len(sha256s)} --sha256 values for {len(sources)} files; give one per file, in order")
    target = Path(output).expanduser() if output else default_output(a2b)
    publish.check_target(target, "keras")
    generators, described = {}, {}
    for (direction, source), pinned in zip(sources.items(), list(sha256s) + [None] * 2):
        name = "generator_g" if direction == "a2b" else "generator_f"
        generators[direction], described[direction] = load_source(source, pinned, cache_dir, log, name=name)
        arch = described[direction]["architecture"]
        log(
            f"{direction}: {described[direction]['source']}: ngf {arch['ngf']}, {arch['n_blocks']} blocks"
            f"{', affine norm' if arch['affine'] else ''}{', dropout layout' if arch['dropout'] else ''}"
        )
    first = described["a2b"]["architecture"]
    metadata = ModelMetadata(
        tfcyclegan_version=__version__,
        # The official generators were trained on 256 x 256 crops.
        image_size=256,
        blocks=first["n_blocks"],
        ngf=first["ngf"],
        sources=described,
        extra={"created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    )
    with publish.staged(target, "keras") as staging:
        metadata = modeldir.save(staging, generators, metadata)
    return target, metadata
