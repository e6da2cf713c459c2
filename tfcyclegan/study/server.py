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
_ID = re.compile(r"^[0-9a-f]{16}$")


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
    """The study's manifest.json as a dict; UserError when it is missing or not a study manifest."""
    path = Path(study_dir).expanduser() / MANIFEST
    if not path.is_file():
        raise UserError(f"{path.parent} is not a study directory (no {MANIFEST}); make one with `tfcyclegan study`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(
            f"cannot read {path}: {error}; delete the study directory and run `tfcyclegan study` again"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not a tfcyclegan study manifest (format {FORMAT}); run `tfcyclegan study` again")
    return manifest


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
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
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

    def read(self, log=report.note):
        """Every record, in file order; a line that is not a JSON object is skipped with a note."""
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as error:
            raise UserError(f"cannot read {self.path}: {first_line(error)}") from None
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                log(f"note: {self.path} line {number} is not a JSON object; skipped")
        return records


class BadAnswer(Exception):
    """A posted session that cannot be recorded: the message goes back as a 400's JSON error."""


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadAnswer(f"{name} must be a number")
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
        self.recorded = {r.get("participant") for r in self.store.read(log)}
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
        for direction in self.directions:
            entry = self.manifest["directions"][direction]
            shortest = min(len(entry["real"]), len(entry["fake"]))
            if shortest < self.practice + self.trials:
                log(
                    f"note: {direction} has {shortest} image pairs for {self.practice + self.trials} trials; "
                    "images repeat within a session"
                )

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
        if not isinstance(participant, str) or not _ID.match(participant):
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
        if file is None:
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        try:
            body = file.read_bytes()
        except OSError:
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        self._send(HTTPStatus.OK, body, CONTENT_TYPES[file.suffix])

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != "/api/answers":
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"}, close=True)
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "Content-Length required"}, close=True)
        if int(length) > MAX_POST_BYTES:
            # The body is left unread, so this connection cannot carry another request.
            return self._json(HTTPStatus.BAD_REQUEST, {"error": f"body over {MAX_POST_BYTES} bytes"}, close=True)
        body = self.rfile.read(int(length))
        status, reply = self.server.study.record(body)
        self._json(status, reply)

    def log_message(self, format, *args):
        """Requests are not logged: recorded sessions are, by Study.record."""


class StudyServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer for one Study; IPv6 when the host is an IPv6 address."""

    daemon_threads = True

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

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"
