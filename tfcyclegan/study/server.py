"""A perceptual study of a trained model in the browser: the protocol of the CycleGAN
(Zhu et al. 2017, sec. 5.1.1) and pix2pix (Isola et al. 2017, sec. 4.2) "real vs fake"
studies, served from a study directory by the standard library's http.server.

A study directory holds:
- manifest.json: the model, the domains, the image size and, per direction, the real
  images of the target domain and the translations into it (each an opaque id, so the
  page's URLs do not say which image is real);
- images/<id>.png: what the page shows (real and translated, both at the same size);
- sources/<id>.png: the input each translation was made from (never served);
- answers.jsonl: one JSON line per finished session, appended atomically.

Nothing here imports NumPy or TensorFlow until images are prepared, so serving and reporting
stay light and the command line takes its constants at no cost.
"""

import datetime
import errno
import fcntl
import ipaddress
import json
import math
import os
import re
import secrets
import socket
import stat
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tfcyclegan.models import identify
from tfcyclegan.models.export_format import DIRECTIONS  # a2b (G), b2a (F), as everywhere
from tfcyclegan.models.metadata import ModelMetadata
from tfcyclegan.util import fsutil, report
from tfcyclegan.util.errors import UserError, first_line

# What `study` takes as its model: anything `translate` takes.
ACCEPTS = identify.Accepts("model", identify.ANY)
MANIFEST = "manifest.json"
ANSWERS = "answers.jsonl"
IMAGES = "images"
SOURCES = "sources"
FORMAT = 1
PAGE_DIR = Path(__file__).resolve().parent / "page"
PAGE_FILES = {"/": "index.html", "/study.js": "study.js", "/study.css": "study.css"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png"}  # fmt: skip
# A session of 1000 trials posts about 100 KB; anything much larger is not an answer.
MAX_POST_BYTES = 256 * 1024
MAX_TRIALS = 1000
# Longest believable response time or session: a day, in milliseconds.
MAX_MS = 24 * 3600 * 1000
# What secrets.token_hex(8) gives: image ids (file names) and participant ids. Matched whole
# (fullmatch: `$` would let a trailing newline through).
_ID = re.compile(r"[0-9a-f]{16}")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(moment):
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_loopback(host):
    """Whether only this machine can reach a server listening on `host`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def target_domain(direction):
    """The domain a direction translates into: "b" for a2b, "a" for b2a."""
    return direction[-1]


def read_manifest(study_dir):
    """The study's manifest.json as a dict; UserError when it is missing, not a regular file or
    not a study manifest as `prepare` writes it (_manifest_problem)."""
    path = Path(study_dir).expanduser() / MANIFEST
    if not os.path.lexists(path):
        raise UserError(f"{path.parent} is not a study directory (no {MANIFEST}); make one with `tfcyclegan study`")
    try:
        manifest = json.loads(fsutil.read_regular_text(path))
    except (OSError, ValueError) as error:
        raise UserError(
            f"cannot read {path}: {first_line(error)}; delete the study directory and run `tfcyclegan study` again"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not a tfcyclegan study manifest (format {FORMAT}); run `tfcyclegan study` again")
    problem = _manifest_problem(manifest)
    if problem:
        raise UserError(
            f"{path} is not a study manifest as `tfcyclegan study` writes it ({problem}); "
            "delete the study directory and run `tfcyclegan study` again"
        )
    return manifest


def _manifest_problem(manifest):
    """What makes a format-1 manifest unusable, or None: a key missing or of another type, or an
    image id other than 16 hex digits (an id is a file name: `../../x` would reach outside)."""

    def kind(value, expected):
        return isinstance(value, expected) and not isinstance(value, bool)

    if not kind(manifest.get("model"), str):
        return '"model" is not a path'
    for side in ("domain_a", "domain_b"):
        domain = manifest.get(side)
        if not isinstance(domain, dict) or not all(kind(domain.get(key), str) for key in ("spec", "name", "root")):
            return f'"{side}" lacks its spec, name or root'
    if not (manifest.get("data_root") is None or kind(manifest.get("data_root"), str)):
        return '"data_root" is not a path'
    if not kind(manifest.get("image_size"), int) or not kind(manifest.get("seed"), int):
        return '"image_size" or "seed" is not an integer'
    directions = manifest.get("directions")
    if not isinstance(directions, dict) or not set(directions) <= set(DIRECTIONS):
        return f'"directions" is not a mapping of {" and ".join(DIRECTIONS)}'
    for direction, entry in directions.items():
        if not isinstance(entry, dict):
            return f'"{direction}" lacks its images'
        for kind_name in ("real", "fake"):
            images = entry.get(kind_name)
            if not isinstance(images, list) or not images:
                return f'"{direction}" has no {kind_name} images'
            for image in images:
                if not isinstance(image, dict) or not kind(image.get("from"), str):
                    return f'a {kind_name} image of "{direction}" lacks its id or source'
                if not isinstance(image.get("id"), str) or not _ID.fullmatch(image["id"]):
                    return f"{direction} image id {json.dumps(image.get('id'))} is not 16 hex digits"
    return None


def owning_study(path):
    """The study directory whose own file (manifest, answers, images) `path` is, or None."""
    return fsutil.owning_folder(
        path, lambda folder: os.path.lexists(folder / MANIFEST), (MANIFEST, ANSWERS, IMAGES, SOURCES)
    )


def _write_json(path, value):
    fsutil.write_atomic(path, json.dumps(value, indent=2) + "\n")


def _pick(files, count, rng):
    """`count` of `files` (or all), drawn without replacement, in the drawn order."""
    return [files[i] for i in rng.permutation(len(files))[:count]]


def _study_files(domain, label, log):
    """Readable images of a domain to show (splits.shown: its test images, else its training images) and their split."""
    from tfcyclegan.data import splits

    files, split = splits.shown(domain)
    if split != splits.TEST:
        log(f"note: domain {label} ({domain.name}) has no test images; the study uses its training images")
    return splits.readable(files, "test" if split == splits.TEST else "training", label, domain, log), split


def _save_png(array, path):
    from PIL import Image

    with fsutil.replacing(path) as partial:
        Image.fromarray(array).save(partial, format="PNG")


def prepare(model, study_dir, domain_a=None, domain_b=None, directions=DIRECTIONS, count=50, seed=0, data_root=None,
            log=report.note, trust_model=False):  # fmt: skip
    """Make or reuse the study directory for `model` (anything inference.load_translator takes).

    For each direction not yet prepared, `count` test images of the source domain and
    `count` of the target domain are drawn at random (numpy seed `seed`; fewer when the
    domain has fewer), resized to the model's training size (bicubic, no crop, as
    `evaluate` does), the source images translated once, and the real target images and
    the translations stored as PNGs under random ids. A directory made for another model
    or other domains is an error. `trust_model` is inference.load_translator's. Returns the manifest.
    """
    import numpy as np

    from tfcyclegan import inference
    from tfcyclegan.data import datasets, imagefiles, pipeline

    study_dir = Path(study_dir).expanduser()
    model_path = str(Path(model).expanduser().resolve())
    existing = read_manifest(study_dir) if (study_dir / MANIFEST).exists() else None
    if existing and existing["model"] != model_path:
        raise UserError(
            f"study directory {study_dir} was made for model {existing['model']}, not {model_path}; "
            "pass another --study-dir for this model"
        )
    todo = [d for d in directions if not existing or d not in existing["directions"]]
    if todo:
        ACCEPTS.identify(model)
    translators = {d: inference.load_translator(model, d, trust_model=trust_model) for d in todo}
    info = next(iter(translators.values())).info if translators else ModelMetadata()
    if existing:
        domain_a = domain_a or existing["domain_a"]["spec"]
        domain_b = domain_b or existing["domain_b"]["spec"]
        data_root = data_root or existing["data_root"]
    domain_a, domain_b = domain_a or info.domain_a, domain_b or info.domain_b
    data_root = data_root or info.data_root
    if not domain_a or not domain_b:
        raise UserError(f"{model} does not say which domains it translates; pass --domain-a and --domain-b")
    domains = dict(zip("ab", datasets.resolve_domains(domain_a, domain_b, data_root)))
    if existing:
        for side in "ab":
            if existing[f"domain_{side}"]["root"] != domains[side].root:
                raise UserError(
                    f"study directory {study_dir} was made with domain {side.upper()} {existing[f'domain_{side}']['root']}, "
                    f"not {domains[side].root}; pass another --study-dir for other domains"
                )
        if not todo:
            return existing
    manifest = existing or {
        "format": FORMAT,
        "model": model_path,
        "kind": next(iter(translators.values())).kind,
        "domain_a": {"spec": str(domain_a), "name": domains["a"].name, "root": domains["a"].root},
        "domain_b": {"spec": str(domain_b), "name": domains["b"].name, "root": domains["b"].root},
        "data_root": str(data_root) if data_root else None,
        "image_size": int(info.image_size or 256),
        "seed": int(seed),
        "created": _iso(_now()),
        "directions": {},
    }
    size = manifest["image_size"]
    for folder in (IMAGES, SOURCES):
        try:
            (study_dir / folder).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"cannot create {study_dir / folder}: {first_line(error)}; choose another --study-dir"
            ) from None
    files = {side: _study_files(domains[side], side.upper(), log) for side in "ab"}
    for direction in todo:
        rng = np.random.default_rng([manifest["seed"], DIRECTIONS.index(direction)])
        source, target = direction[0], target_domain(direction)
        inputs = _pick(files[source][0], count, rng)
        reals = _pick(files[target][0], count, rng)
        log(f"{direction}: translating {len(inputs)} {files[source][1]} images of {domains[source].name} at {size}px")
        real_x = imagefiles.to_uint8(pipeline.make_eval_batch(reals, size, len(reals)))
        input_x = pipeline.make_eval_batch(inputs, size, len(inputs))
        fake_x = imagefiles.to_uint8(translators[direction](input_x))
        entry = {"real": [], "fake": [], "images_from": {source: files[source][1], target: files[target][1]}}
        for path, image in zip(reals, real_x):
            image_id = secrets.token_hex(8)
            _save_png(image, study_dir / IMAGES / f"{image_id}.png")
            entry["real"].append({"id": image_id, "from": str(path)})
        for path, image, original in zip(inputs, fake_x, imagefiles.to_uint8(input_x)):
            image_id = secrets.token_hex(8)
            _save_png(image, study_dir / IMAGES / f"{image_id}.png")
            _save_png(original, study_dir / SOURCES / f"{image_id}.png")
            entry["fake"].append({"id": image_id, "from": str(path)})
        manifest["directions"][direction] = entry
        _write_json(study_dir / MANIFEST, manifest)
    return manifest


class AnswerStore:
    """answers.jsonl: each record one line, appended whole or not at all.

    A line is written by a single os.write on an O_APPEND descriptor while holding a
    thread lock and an exclusive flock (other processes serving the same directory),
    then fsync'd; a short write (disk full) is truncated away, so no reader ever sees
    half a line.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, record):
        line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        with self._lock:
            # O_NONBLOCK and the fstat: a named pipe put in its place would block the write.
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
            try:
                mode = os.fstat(fd).st_mode
                if not stat.S_ISREG(mode):
                    raise fsutil.NotRegularFile(self.path, mode)
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
                fcntl.flock(fd, fcntl.LOCK_EX)
                before = os.fstat(fd).st_size
                # A line torn by something else (a copy cut short) must not swallow ours.
                if before and os.pread(fd, 1, before - 1) != b"\n":
                    line = b"\n" + line
                written = os.write(fd, line)
                if written != len(line):
                    os.ftruncate(fd, before)
                    raise OSError(errno.ENOSPC, f"only {written} of {len(line)} bytes could be written")
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, log=report.note, check=None):
        """Every record, in file order; a line that is not a JSON object, or that `check(record)`
        finds a problem with (a string; recorded_problem for the sessions Study.record writes),
        is skipped with a note."""
        try:
            text = fsutil.read_regular(self.path).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as error:
            raise UserError(
                f"cannot read {self.path}: {first_line(error)}; move it away (the study starts a new one)"
            ) from None
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if not isinstance(record, dict):
                log(f"note: {self.path} line {number} is not a JSON object; skipped")
                continue
            problem = check and check(record)
            if problem:
                log(f"note: {self.path} line {number} is not a recorded session ({problem}); skipped")
            else:
                records.append(record)
        return records


def recorded_problem(record):
    """What keeps an answers.jsonl line from being counted, or None: the keys and types
    `study-report` and a restarted server rely on."""
    if not isinstance(record.get("participant"), str) or not _ID.fullmatch(record["participant"]):
        return "its participant is not an id"
    if record.get("direction") not in DIRECTIONS:
        return f"its direction is not {' or '.join(DIRECTIONS)}"
    trials = record.get("trials")
    if not isinstance(trials, list):
        return "its trials are not a list"
    for trial in trials:
        if not (isinstance(trial, dict) and trial.get("choice") in ("left", "right")
                and trial.get("real") in ("left", "right") and isinstance(trial.get("practice"), bool)):  # fmt: skip
            return "a trial lacks its choice, real side or practice flag"
    if not isinstance(record.get("start"), (str, type(None))):
        return "its start is not a time"
    return None


class BadAnswer(Exception):
    """A posted session that cannot be recorded: the message goes back as a 400's JSON error."""


def _number(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or isinstance(value, float)
        and not math.isfinite(value)
    ):
        raise BadAnswer(f"{name} must be a number")
    # Compared as it is: an integer of 400 digits is fine to compare, not to make a float of.
    if not 0 <= value <= MAX_MS:
        raise BadAnswer(f"{name} must be between 0 and {MAX_MS}")
    return round(float(value), 1)


def check_trials(practice, trials):
    """A session's length within MAX_TRIALS: checked before a study is prepared, and when it is served."""
    if practice < 0 or trials < 1 or practice + trials > MAX_TRIALS:
        raise UserError(f"--practice + --trials must be at most {MAX_TRIALS}, with at least one scored trial")


class Study:
    """A prepared study directory served with these session settings; thread-safe."""

    def __init__(self, study_dir, directions=None, practice=10, trials=40, exposure_ms=1000, log=report.note):
        self.dir = Path(study_dir).expanduser()
        self.manifest = read_manifest(self.dir)
        prepared = list(self.manifest["directions"])
        self.directions = list(directions or prepared)
        for direction in self.directions:
            if direction not in prepared:
                raise UserError(f"study directory {self.dir} has no {direction} images; run `tfcyclegan study` for it")
        check_trials(practice, trials)
        self.practice, self.trials, self.exposure_ms = int(practice), int(trials), int(exposure_ms)
        self.log = log
        self.store = AnswerStore(self.dir / ANSWERS)
        self.recorded = {r["participant"] for r in self.store.read(log, check=recorded_problem)}
        self._issued = len(self.recorded)  # sessions keep alternating directions across restarts
        self._lock = threading.Lock()
        self._rng = secrets.SystemRandom()
        self.truth = {}  # direction -> {image id: "real" or "fake"}
        self.files = {path: PAGE_DIR / name for path, name in PAGE_FILES.items()}
        for direction, entry in self.manifest["directions"].items():
            self.truth[direction] = {}
            for kind in ("real", "fake"):
                for image in entry[kind]:
                    self.truth[direction][image["id"]] = kind
                    self.files[f"/{IMAGES}/{image['id']}.png"] = self.dir / IMAGES / f"{image['id']}.png"
        for file in self.files.values():
            self.confined(file, strict=True)
        for direction in self.directions:
            entry = self.manifest["directions"][direction]
            shortest = min(len(entry["real"]), len(entry["fake"]))
            if shortest < self.practice + self.trials:
                log(
                    f"note: {direction} has {shortest} image pairs for {self.practice + self.trials} trials; "
                    "images repeat within a session"
                )

    def confined(self, file, strict=False):
        """The real path of served `file` when it resolves inside its own folder (the page's
        folder or the study's images/), else None (`strict`: a UserError naming the file, for a
        study directory whose images were replaced by links leading elsewhere)."""
        home = PAGE_DIR if file.parent == PAGE_DIR else self.dir / IMAGES
        real = Path(os.path.realpath(file))
        if real.parent == Path(os.path.realpath(home)):
            return real
        if strict:
            raise UserError(
                f"{file} leads to {real}, outside {home}; the study serves only its own files: "
                "delete the study directory and run `tfcyclegan study` again"
            )
        return None

    def _cycle(self, items, count):
        """`count` items: shuffled passes over `items`, so repeats come only after all were used."""
        out = []
        while len(out) < count:
            batch = list(items)
            self._rng.shuffle(batch)
            out += batch
        return out[:count]

    def new_session(self):
        """A session for the page: a fresh participant id, a direction (in turn) and its trials.

        Only practice trials say which side is real (for their feedback); the server
        knows the scored ones from the manifest.
        """
        with self._lock:
            direction = self.directions[self._issued % len(self.directions)]
            self._issued += 1
        entry = self.manifest["directions"][direction]
        total = self.practice + self.trials
        reals = self._cycle([i["id"] for i in entry["real"]], total)
        fakes = self._cycle([i["id"] for i in entry["fake"]], total)
        trials = []
        for index, (real, fake) in enumerate(zip(reals, fakes)):
            real_side = self._rng.choice(("left", "right"))
            left, right = (real, fake) if real_side == "left" else (fake, real)
            trial = {"left": left, "right": right, "practice": index < self.practice}
            if trial["practice"]:
                trial["real"] = real_side
            trials.append(trial)
        target = self.manifest[f"domain_{target_domain(direction)}"]["name"]
        return {"participant": secrets.token_hex(8), "direction": direction, "target": target,
                "practice": self.practice, "trials": self.trials, "exposure_ms": self.exposure_ms,
                "sequence": trials}  # fmt: skip

    def _check(self, answer):
        if not isinstance(answer, dict):
            raise BadAnswer("expected a JSON object")
        expected = {"participant", "direction", "duration_ms", "trials"}
        if set(answer) != expected:
            raise BadAnswer(f"expected exactly the keys {', '.join(sorted(expected))}")
        participant, direction = answer["participant"], answer["direction"]
        if not isinstance(participant, str) or not _ID.fullmatch(participant):
            raise BadAnswer("participant must be the id the session came with")
        if direction not in self.directions:
            raise BadAnswer(f"direction must be one of {', '.join(self.directions)}")
        trials = answer["trials"]
        if not isinstance(trials, list) or len(trials) != self.practice + self.trials:
            raise BadAnswer(f"trials must be a list of {self.practice + self.trials} answers")
        truth = self.truth[direction]
        checked = []
        for index, trial in enumerate(trials):
            name = f"trials[{index}]"
            if not isinstance(trial, dict) or set(trial) != {"left", "right", "choice", "rt_ms", "practice"}:
                raise BadAnswer(f"{name} must have exactly left, right, choice, rt_ms, practice")
            if not isinstance(trial["left"], str) or not isinstance(trial["right"], str):
                raise BadAnswer(f"{name}.left and .right must be image ids")
            kinds = (truth.get(trial["left"]), truth.get(trial["right"]))
            if sorted(map(str, kinds)) != ["fake", "real"]:
                raise BadAnswer(f"{name} must pair one real and one translated image of {direction}")
            if trial["choice"] not in ("left", "right"):
                raise BadAnswer(f"{name}.choice must be left or right")
            if trial["practice"] is not (index < self.practice):
                raise BadAnswer(f"{name}.practice must be {str(index < self.practice).lower()}")
            real = "left" if kinds[0] == "real" else "right"
            checked.append({"left": trial["left"], "right": trial["right"], "real": real, "choice": trial["choice"],
                            "correct": trial["choice"] == real, "rt_ms": _number(trial["rt_ms"], f"{name}.rt_ms"),
                            "practice": trial["practice"]})  # fmt: skip
        return participant, direction, _number(answer["duration_ms"], "duration_ms"), checked

    def record(self, body):
        """Validate a posted session (bytes) and append it; returns (HTTP status, JSON-ready reply)."""
        end = _now()
        try:
            answer = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"}
        try:
            participant, direction, duration_ms, trials = self._check(answer)
        except BadAnswer as error:
            return HTTPStatus.BAD_REQUEST, {"error": str(error)}
        scored = [t for t in trials if not t["practice"]]
        record = {
            "participant": participant,
            "start": _iso(end - datetime.timedelta(milliseconds=duration_ms)),
            "end": _iso(end),
            "model": self.manifest["model"],
            "direction": direction,
            "exposure_ms": self.exposure_ms,
            "practice": self.practice,
            "scored": self.trials,
            "trials": trials,
        }
        with self._lock:
            if participant in self.recorded:
                return HTTPStatus.CONFLICT, {"error": "this session is already recorded"}
            self.recorded.add(participant)
        try:
            self.store.append(record)
        except OSError as error:
            with self._lock:
                self.recorded.discard(participant)
            self.log(f"error: cannot append to {self.store.path}: {first_line(error)}; session not recorded")
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "the server could not save the answers"}
        correct = sum(t["correct"] for t in scored)
        fooled = len(scored) - correct
        self.log(f"recorded participant {participant} ({direction}): fooled in {fooled} of {len(scored)} scored trials")
        return HTTPStatus.OK, {"recorded": True, "correct": correct, "scored": len(scored)}


class _Handler(BaseHTTPRequestHandler):
    """GET the page, the study's images and /api/session; POST /api/answers. Anything else is 404.

    Paths are looked up verbatim in the study's table of files (never joined onto a
    folder), so `..`, encoded or not, cannot reach any other file.
    """

    server_version = "tfcyclegan-study"
    sys_version = ""
    timeout = 60  # a client that stops sending mid-request frees its thread

    def _send(self, status, body, content_type, close=False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status, value, close=False):
        self._send(status, json.dumps(value).encode(), "application/json", close)

    def do_GET(self):
        study = self.server.study
        path = urllib.parse.urlsplit(self.path).path
        if path == "/api/session":
            return self._json(HTTPStatus.OK, study.new_session())
        file = study.files.get(path)
        # Resolved again at each request: a file swapped for a link since the start is not followed out.
        real = file and study.confined(file)
        if real is None:
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        try:
            body = fsutil.read_regular(real)
        except OSError:
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        self._send(HTTPStatus.OK, body, CONTENT_TYPES[file.suffix])

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != "/api/answers":
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"}, close=True)
        length = self.headers.get("Content-Length", "")
        # ASCII digits only: str.isdigit also takes "²" and "١", which int() refuses or reads.
        if not (length.isascii() and length.isdigit()):
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "Content-Length required"}, close=True)
        if int(length) > MAX_POST_BYTES:
            # The body is left unread, so this connection cannot carry another request.
            return self._json(HTTPStatus.BAD_REQUEST, {"error": f"body over {MAX_POST_BYTES} bytes"}, close=True)
        body = self.rfile.read(int(length))
        if len(body) != int(length):  # the client stopped sending
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "body shorter than Content-Length"}, close=True)
        status, reply = self.server.study.record(body)
        self._json(status, reply)

    def log_message(self, format, *args):
        """Requests are not logged: recorded sessions are, by Study.record."""


class StudyServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer for one Study; IPv6 when the host is an IPv6 address."""

    daemon_threads = True
    # The listen backlog: socketserver's 5 resets connections when a class of 50 starts at once.
    request_queue_size = 128

    def __init__(self, study, host="127.0.0.1", port=8765):
        self.study = study
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} is in use; pass another --port (0 picks a free one)") from None
            raise UserError(f"cannot serve on {host}:{port}: {first_line(error)}; check --host and --port") from None

    def handle_error(self, request, client_address):
        """A client gone before its reply (or silent past the handler's timeout) is nothing to
        report; anything else is one line on stderr instead of socketserver's traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        self.study.log(f"error: a request from {client_address[0]} failed: {first_line(error, whole=True)}")

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"
