"""Where a domain's images come from: a folder, a named Berkeley domain, or the demo pair."""

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras

from tfcyclegan.data import demo
from tfcyclegan.data.imagefiles import list_images
from tfcyclegan.data.splits import SPLIT_FOLDERS
from tfcyclegan.util import fsutil, report
from tfcyclegan.util.errors import UserError, first_line

_BERKELEY = "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/"


@dataclass(frozen=True)
class Archive:
    """A published dataset zip holding <name>/{trainA,trainB,testA,testB}."""

    name: str
    domain_a: str
    domain_b: str
    url: str
    size: int
    sha256: str


# Sizes and SHA-256 as published in the TensorFlow Datasets checksum list.
ARCHIVES = {
    a.name: a
    for a in (
        Archive(
            "apple2orange",
            "apples",
            "oranges",
            _BERKELEY + "apple2orange.zip",
            78456409,
            "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8",
        ),
        Archive(
            "cezanne2photo",
            "cezanne",
            "photos",
            _BERKELEY + "cezanne2photo.zip",
            279885071,
            "3a6c10ca21f9485862f1cbd707744b9dc258954a04631271d23a3605eeb63cff",
        ),
        Archive(
            "horse2zebra",
            "horses",
            "zebras",
            _BERKELEY + "horse2zebra.zip",
            116867962,
            "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1",
        ),
        Archive(
            "monet2photo",
            "monet",
            "photos",
            _BERKELEY + "monet2photo.zip",
            305231073,
            "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04",
        ),
        Archive(
            "summer2winter_yosemite",
            "summer",
            "winter",
            _BERKELEY + "summer2winter_yosemite.zip",
            132640856,
            "167fe1726807a9d22bd106b4a6c0bd7953b688af924ac1bf967439c4961e49f9",
        ),
        Archive(
            "ukiyoe2photo",
            "ukiyoe",
            "photos",
            _BERKELEY + "ukiyoe2photo.zip",
            292946532,
            "02a2a2fb5ecf425ca1bf86aca7304377da64a2a1d3b86df54eb65e4068bf3b08",
        ),
        Archive(
            "vangogh2photo",
            "vangogh",
            "photos",
            _BERKELEY + "vangogh2photo.zip",
            306590349,
            "362c3473e70be0944bda08d49d660eafdc2854df55d697835b8186d1d79caaff",
        ),
    )
}
DOMAIN_NAMES = sorted({d for a in ARCHIVES.values() for d in (a.domain_a, a.domain_b)})
PAIRS_HELP = ", ".join(f"{a.domain_a}/{a.domain_b}" for a in ARCHIVES.values())


@dataclass
class Domain:
    """One side of the translation.

    `root` is the folder the spec resolved to: the user's folder, the extracted archive
    <data_root>/<archive>, or <data_root>/demo. A folder X/trainA (or trainB) beside
    X/testA takes that as its test split. A plain folder without train/ and test/
    subfolders gives all its images to `train_files` and leaves `test_files` empty:
    evaluation then holds out part of the training images (evaluate.held_out).
    """

    name: str
    train_files: list[str]
    test_files: list[str]
    root: str


def default_data_root():
    """$TFCYCLEGAN_DATA, else the Keras dataset cache ($KERAS_HOME or ~/.keras, then datasets/)."""
    if os.environ.get("TFCYCLEGAN_DATA"):
        return Path(os.environ["TFCYCLEGAN_DATA"]).expanduser()
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "datasets"


def check_data_root(data_root, given):
    """A UserError when the data root (`given`: by --data-root, else $TFCYCLEGAN_DATA or the
    default) exists and is not a folder, before anything is made in it."""
    path = Path(data_root).expanduser()
    if not path.exists() or path.is_dir():
        return
    kind = fsutil.kind_of(path.stat().st_mode)
    if given:
        raise UserError(f"--data-root {path} is {kind}, not a folder; give a folder for the datasets (made if missing)")
    if os.environ.get("TFCYCLEGAN_DATA"):
        raise UserError(
            f"TFCYCLEGAN_DATA={os.environ['TFCYCLEGAN_DATA']} is {kind}, not a folder; set it to a folder for the "
            "datasets (made if missing)"
        )
    raise UserError(f"the dataset folder {path} is {kind}; move it away or set TFCYCLEGAN_DATA to a folder")


def find_archive(domain_a, domain_b=None):
    """The archive holding named domains domain_a and domain_b (either order), or holding domain_a alone."""
    a = domain_a.lower()
    if domain_b is None:
        holders = [x for x in ARCHIVES.values() if a in (x.domain_a, x.domain_b)]
        if len(holders) > 1:
            names = ", ".join(x.name for x in holders)
            raise UserError(
                f"{domain_a} is in several datasets ({names}); name both domains (e.g. {domain_a} and "
                f"{holders[0].domain_a}) or give a folder for one of them"
            )
        if holders:
            return holders[0].name
    else:
        b = domain_b.lower()
        for x in ARCHIVES.values():
            if (x.domain_a, x.domain_b) in ((a, b), (b, a)):
                return x.name
        if a in DOMAIN_NAMES and b in DOMAIN_NAMES:
            raise UserError(f"no dataset pairs {domain_a} with {domain_b}; named pairs (either order): {PAIRS_HELP}")
    unknown = domain_a if a not in DOMAIN_NAMES else domain_b
    raise UserError(f"unknown domain {unknown!r}; named pairs (either order): {PAIRS_HELP}")


def _is_complete(folder):
    return all((folder / split).is_dir() for split in SPLIT_FOLDERS)


def _unsafe_member(member):
    name = member.replace("\\", "/")
    return name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in name.split("/")


def _extract(zip_path, archive, data_root, label, advice):
    """Unzip into <data_root>/<name>, refusing absolute or `..` member paths; all or nothing.

    `label` names the zip in messages, `advice` says what to do about a bad one."""
    target = data_root / archive.name
    with zipfile.ZipFile(zip_path) as zf:
        bad = [m for m in zf.namelist() if _unsafe_member(m)]
        if bad:
            raise UserError(f"{label} holds a file outside its folder ({bad[0]!r}); refusing to unzip it, {advice}")
        staging = fsutil.unique_dir(data_root, f".{archive.name}-")
        try:
            zf.extractall(staging)
            source = staging / archive.name if (staging / archive.name).is_dir() else staging
            if not _is_complete(source):
                raise UserError(f"{label} lacks {'/'.join(SPLIT_FOLDERS)}; {advice}")
            os.rename(source, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _mismatch(path, archive):
    """Why the file at `path` is not `archive` ("wrong size", "SHA-256 mismatch"), or None if it is."""
    if path.stat().st_size != archive.size:
        return "wrong size"
    return None if fsutil.sha256(path) == archive.sha256 else "SHA-256 mismatch"


def _fetch(archive, data_root, by_hand, kept):
    """Download `archive` into a folder of our own under `data_root`; returns that folder
    (holding <name>.zip, verified). Nothing outside that folder is written or deleted;
    `kept` is a sentence about an archive of the same name already there, or ""."""
    scratch = fsutil.unique_dir(data_root, f".{archive.name}.download-")
    zip_path = scratch / f"{archive.name}.zip"
    try:
        with report.stdout_as_notes():
            keras.utils.get_file(
                fname=zip_path.name,
                origin=archive.url,
                file_hash=archive.sha256,
                hash_algorithm="sha256",
                cache_dir=str(scratch),
                cache_subdir="",
            )
        if zip_path.stat().st_size != archive.size:
            raise UserError(f"{archive.url} arrived with the wrong size and was deleted; try again{kept}. {by_hand}")
    except Exception as e:
        # Keras deletes a failed fetch itself; a file left behind failed the checksum.
        damaged = zip_path.exists()
        shutil.rmtree(scratch, ignore_errors=True)
        if isinstance(e, UserError):
            raise
        if damaged:
            raise UserError(
                f"{archive.url} arrived damaged (SHA-256 mismatch) and was deleted; try again{kept}. {by_hand}"
            ) from None
        cause = e.__context__ or e
        raise UserError(
            f"could not download {archive.url}: {getattr(cause, 'reason', cause)}{kept}. {by_hand}"
        ) from None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return scratch


def download_archive(name, data_root):
    """Fetch, verify (SHA-256 and size) and unzip archive `name` into <data_root>/<name>; return that folder."""
    if name not in ARCHIVES:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(ARCHIVES)}")
    archive = ARCHIVES[name]
    data_root = Path(data_root).expanduser()
    target = data_root / name
    if _is_complete(target):
        return str(target)
    by_hand = f"Download it by hand and unzip it into {target}/ (trainA, trainB, testA, testB)"
    if target.exists():
        raise UserError(
            f"{target} exists but lacks some of {', '.join(SPLIT_FOLDERS)}; remove it or complete it by hand"
        )
    try:
        data_root.mkdir(parents=True, exist_ok=True)
        writable = os.access(data_root, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise UserError(f"cannot write to {data_root}; set TFCYCLEGAN_DATA or --data-root to a writable folder")
    # An archive of that name already there (a download by hand, an earlier version's
    # leftover, or another file altogether) is used if it verifies, and never deleted
    # or overwritten: this call downloads into a folder of its own.
    existing = data_root / f"{name}.zip"
    kept = ""
    if existing.is_file():
        try:
            why = _mismatch(existing, archive)
        except OSError as e:
            why = f"unreadable: {first_line(e)}"
        if why is None:
            _extract(existing, archive, data_root, str(existing), f"move it away and download {archive.url} again")
            report.note(
                f"note: unzipped {existing}, which was already there (SHA-256 ok); it is kept, "
                "delete it if you no longer need it"
            )
            return str(target)
        kept = f"; {existing} was already there but is not a complete copy ({why}), so it was not used and is kept as it is"
    elif os.path.lexists(existing):
        why = "not a file"
        kept = f"; {existing} was already there but is {why}, so it was not used and is kept as it is"
    try:
        scratch = _fetch(archive, data_root, by_hand, kept)
    except OSError as e:
        raise UserError(
            f"cannot write to {data_root}: {first_line(e)}; set TFCYCLEGAN_DATA or --data-root to a writable folder"
        ) from None
    try:
        if kept:
            report.note(
                f"note: {existing} is not a complete copy of {name} ({why}); it is kept as it is, "
                "and a fresh copy was downloaded"
            )
        _extract(scratch / f"{name}.zip", archive, data_root, archive.url, "the download was deleted")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return str(target)


def _archive_folder(name, data_root, download):
    target = data_root / name
    if _is_complete(target):
        return target
    if not download:
        archive = ARCHIVES[name]
        raise UserError(
            f"{target} not found and downloading is off; run `tfcyclegan download {name}`, or download "
            f"{archive.url} by hand and unzip it into {target}/ (trainA, trainB, testA, testB)"
        )
    return Path(download_archive(name, data_root))


def _split_domain(name, root, side):
    return Domain(
        name=name,
        train_files=list_images(root / f"train{side}"),
        test_files=list_images(root / f"test{side}", allow_empty=True) if (root / f"test{side}").is_dir() else [],
        root=str(root),
    )


def _folder_domain(spec):
    root = Path(spec).expanduser().resolve()
    # The Berkeley layout (what `download` writes): X/trainA is one domain's training
    # split and its sibling X/testA the test split.
    sibling = root.with_name("test" + root.name[len("train") :])
    if root.name in ("trainA", "trainB") and sibling.is_dir():
        train, test = list_images(root), list_images(sibling, allow_empty=True)
    elif (root / "train").is_dir() and (root / "test").is_dir():
        train, test = list_images(root / "train"), list_images(root / "test", allow_empty=True)
    else:
        train, test = list_images(root), []
    return Domain(name=root.name, train_files=train, test_files=test, root=str(root))


def _kind(spec):
    if spec.lower().startswith("demo:"):
        if spec.lower() not in demo.DEMO_DOMAINS:
            raise UserError(f"unknown demo domain {spec!r}; use {' or '.join(demo.DEMO_DOMAINS)}")
        return "demo"
    if Path(spec).expanduser().exists():
        return "folder"
    if spec.lower() in DOMAIN_NAMES:
        return "named"
    raise UserError(
        f"{spec!r} is neither an existing folder nor a named domain; give a folder, a named pair "
        f"(either order: {PAIRS_HELP}) or demo:flat / demo:striped"
    )


def folder_spec(spec):
    """A domain spec as a run saves it: a folder as its absolute, resolved path (so that a run
    resumed from another working folder finds the same images), a name or demo: as it is."""
    spec = str(spec)
    if spec.lower().startswith("demo:") or not Path(spec).expanduser().exists():
        return spec
    return str(Path(spec).expanduser().resolve())


def resolve_domains(domain_a, domain_b, data_root=None, download=True):
    """Domains A and B from two specs: an existing folder, a named domain or a demo: domain.

    An existing folder wins over a name. Two names resolve to the archive holding both,
    each side as asked (photos + ukiyoe is ukiyoe2photo with A = its trainB). A name
    next to a folder or demo domain must be held by a single archive.
    """
    given = bool(data_root)
    data_root = Path(data_root).expanduser() if data_root else default_data_root()
    specs = (str(domain_a), str(domain_b))
    kinds = [_kind(s) for s in specs]
    if set(kinds) - {"folder"}:
        check_data_root(data_root, given)
    domains = []
    for i, (spec, kind) in enumerate(zip(specs, kinds)):
        if kind == "folder":
            domains.append(_folder_domain(spec))
        elif kind == "demo":
            root = Path(demo.ensure_demo_data(data_root))
            domains.append(_split_domain(spec.lower(), root, demo.DEMO_DOMAINS[spec.lower()]))
        else:
            partner = specs[1 - i] if kinds[1 - i] == "named" else None
            name = find_archive(spec, partner)
            side = "A" if ARCHIVES[name].domain_a == spec.lower() else "B"
            domains.append(_split_domain(spec.lower(), _archive_folder(name, data_root, download), side))
    if set(domains[0].train_files) == set(domains[1].train_files):
        report.note(
            f"warning: domains A and B are the same images ({domains[0].root}); the model can only learn the identity"
        )
    return domains[0], domains[1]


def resolve_domain(spec, data_root=None, download=True):
    """One domain from a spec, as resolve_domains resolves each of two (a named domain is
    taken from the one archive that holds it)."""
    kind = _kind(str(spec))
    if kind == "folder":
        return _folder_domain(spec)
    data_root = Path(data_root).expanduser() if data_root else default_data_root()
    if kind == "demo":
        root = Path(demo.ensure_demo_data(data_root))
        return _split_domain(spec.lower(), root, demo.DEMO_DOMAINS[spec.lower()])
    name = find_archive(spec, None)
    side = "A" if ARCHIVES[name].domain_a == spec.lower() else "B"
    return _split_domain(spec.lower(), _archive_folder(name, data_root, download), side)
