"""`tfcyclegan study` and `study-report` without a browser: preparation, the HTTP server
(only the study's files, bad POSTs, concurrent and restarted appends), the answers store
and the report's arithmetic."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner
from helpers import default_sigint, write_noise_run
from PIL import Image
from tfcyclegan_cli.main import main
from tfcyclegan_cli.study import format_table

from tfcyclegan.study import analysis, server
from tfcyclegan.util.errors import UserError

PRACTICE, TRIALS = 2, 4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny untrained run whose domains are folders of 36 px noise images."""
    return write_noise_run(tmp_path_factory.mktemp("study"), 5)


@pytest.fixture(scope="module")
def prepared(run_dir):
    """A study directory for both directions, 5 images each (the folders hold 5)."""
    directory = run_dir.parent / "study"
    server.prepare(run_dir, directory, directions=["a2b", "b2a"], count=PRACTICE + TRIALS, log=lambda m: None)
    return directory


class Served:
    """A StudyServer on a free loopback port, in a thread; stop() shuts it down (once)."""

    def __init__(self, directory, **settings):
        settings = {"practice": PRACTICE, "trials": TRIALS, "log": lambda m: None, **settings}
        self.study = server.Study(directory, **settings)
        self.server = server.StudyServer(self.study, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def request(self, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), response.read()
        finally:
            connection.close()

    def session(self):
        status, _, body = self.request("GET", "/api/session")
        assert status == 200
        return json.loads(body)

    def post(self, answer):
        status, _, body = self.request("POST", "/api/answers", json.dumps(answer).encode(),
                                       {"Content-Type": "application/json"})  # fmt: skip
        return status, json.loads(body)

    def stop(self):
        if not self.thread.is_alive():
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def served(prepared, tmp_path):
    """A copy of the prepared study (its own answers.jsonl) being served."""
    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)
    server = Served(directory)
    yield server
    server.stop()


def answer_all(session, choose):
    """The POST body of a session answered with choose(trial index, trial) -> "left"/"right"."""
    trials = [{"left": t["left"], "right": t["right"], "choice": choose(i, t), "rt_ms": 500 + i, "practice": t["practice"]}
              for i, t in enumerate(session["sequence"])]  # fmt: skip
    return {"participant": session["participant"], "direction": session["direction"], "duration_ms": 9000,
            "trials": trials}  # fmt: skip


def lines(directory):
    return (
        (directory / server.ANSWERS).read_bytes().decode().splitlines() if (directory / server.ANSWERS).exists() else []
    )


def test_prepare_stores_real_and_translated_images_under_opaque_ids(prepared, run_dir):
    manifest = server.read_manifest(prepared)
    assert manifest["model"] == str(run_dir.resolve()) and manifest["image_size"] == 32
    for direction in ("a2b", "b2a"):
        entry = manifest["directions"][direction]
        assert len(entry["real"]) == len(entry["fake"]) == 5
        target = server.target_domain(direction).upper()
        assert all(os.path.dirname(image["from"]).endswith(f"/{target}") for image in entry["real"])
        for image in entry["real"] + entry["fake"]:
            assert Image.open(prepared / "images" / f"{image['id']}.png").size == (32, 32)
            assert "real" not in image["id"] and "fake" not in image["id"]
        for image in entry["fake"]:
            assert (prepared / "sources" / f"{image['id']}.png").is_file()


def test_prepare_reuses_the_directory_and_refuses_another_model(prepared, run_dir, tmp_path):
    before = (prepared / server.MANIFEST).read_text()
    assert server.prepare(run_dir, prepared, directions=["a2b"], count=3, log=lambda m: None)["directions"]
    assert (prepared / server.MANIFEST).read_text() == before
    with pytest.raises(UserError, match="was made for model .*; pass another --study-dir"):
        server.prepare(tmp_path, prepared, directions=["a2b"], log=lambda m: None)


def test_sessions_alternate_directions_and_hide_the_scored_truth(served):
    first, second = served.session(), served.session()
    assert {first["direction"], second["direction"]} == {"a2b", "b2a"}
    assert first["participant"] != second["participant"]
    sequence = first["sequence"]
    assert len(sequence) == PRACTICE + TRIALS
    assert [t["practice"] for t in sequence] == [True] * PRACTICE + [False] * TRIALS
    assert all(t["real"] in ("left", "right") for t in sequence[:PRACTICE])
    assert all("real" not in t for t in sequence[PRACTICE:])
    truth = served.study.truth[first["direction"]]
    assert all(sorted((truth[t["left"]], truth[t["right"]])) == ["fake", "real"] for t in sequence)


def test_a_finished_session_is_one_line_with_the_truth_from_the_manifest(served):
    session = served.session()
    status, reply = served.post(answer_all(session, lambda i, t: "left"))
    truth = served.study.truth[session["direction"]]
    real_sides = ["left" if truth[t["left"]] == "real" else "right" for t in session["sequence"]]
    assert status == 200
    assert reply == {"recorded": True, "correct": real_sides[PRACTICE:].count("left"), "scored": TRIALS}
    [line] = lines(served.study.dir)
    record = json.loads(line)
    assert record["participant"] == session["participant"] and record["direction"] == session["direction"]
    assert record["model"] == served.study.manifest["model"] and record["start"] < record["end"]
    assert [t["real"] for t in record["trials"]] == real_sides
    assert [t["practice"] for t in record["trials"]] == [True] * PRACTICE + [False] * TRIALS
    assert [t["rt_ms"] for t in record["trials"]] == [500.0 + i for i in range(PRACTICE + TRIALS)]
    assert served.post(answer_all(session, lambda i, t: "left"))[0] == 409
    assert len(lines(served.study.dir)) == 1


@pytest.mark.parametrize(
    "path",
    ["/../manifest.json", "/manifest.json", "/answers.jsonl", "/images/../manifest.json", "/%2e%2e/manifest.json",
     "/images/%2e%2e/manifest.json", "/study_page/index.html", "/sources/{fake}.png", "/images/{fake}.png/..",
     "/images/{fake}", "//etc/passwd", "/images/", "/api/answers"],
)  # fmt: skip
def test_only_the_study_files_are_served(served, path):
    fake = served.study.manifest["directions"]["a2b"]["fake"][0]["id"]
    status, content_type, body = served.request("GET", path.format(fake=fake))
    assert (status, content_type, json.loads(body)) == (404, "application/json", {"error": "not found"})


def test_the_page_and_the_images_are_served(served):
    for path, kind in (("/", "text/html"), ("/study.js", "text/javascript"), ("/study.css", "text/css")):
        status, content_type, body = served.request("GET", path)
        assert status == 200 and content_type.startswith(kind) and body
    image = served.study.manifest["directions"]["b2a"]["real"][0]["id"]
    status, content_type, body = served.request("GET", f"/images/{image}.png?cache=1")
    assert (status, content_type) == (200, "image/png")
    assert body == (served.study.dir / "images" / f"{image}.png").read_bytes()


def bad_answers(session, served):
    good = answer_all(session, lambda i, t: "right")
    other = "b2a" if session["direction"] == "a2b" else "a2b"
    foreign = served.study.manifest["directions"][other]["real"][0]["id"]
    yield b"not json", "not JSON"
    yield b"\xff\xfe", "not JSON"
    yield b"[" * 100_000, "not JSON"
    yield json.dumps([good]).encode(), "JSON object"
    yield json.dumps({**good, "extra": 1}).encode(), "exactly the keys"
    yield json.dumps({**good, "participant": "../../x"}).encode(), "participant"
    yield json.dumps({**good, "direction": "c2d"}).encode(), "direction"
    yield json.dumps({**good, "trials": good["trials"][:-1]}).encode(), "trials must be a list of"
    yield json.dumps({**good, "duration_ms": -1}).encode(), "duration_ms"
    yield json.dumps({**good, "duration_ms": "NaN"}).encode(), "duration_ms"
    for change, message in (({"choice": "both"}, "choice"), ({"rt_ms": True}, "rt_ms"), ({"practice": True}, "practice"),
                            ({"left": foreign}, "one real and one translated"), ({"left": ["x"]}, "image ids"),
                            ({"right": session["sequence"][-1]["left"]}, "one real and one translated")):  # fmt: skip
        trials = [*good["trials"][:-1], {**good["trials"][-1], **change}]
        yield json.dumps({**good, "trials": trials}).encode(), message


def test_bad_posts_are_400_with_a_short_json_error_and_write_nothing(served):
    session = served.session()
    for body, message in bad_answers(session, served):
        status, content_type, reply = served.request("POST", "/api/answers", body)
        assert (status, content_type) == (400, "application/json"), (body[:80], reply)
        error = json.loads(reply)["error"]
        assert message in error and len(error) < 120
    status, _, reply = served.request("POST", "/api/answers", b"x" * (server.MAX_POST_BYTES + 1))
    assert status == 400 and "bytes" in json.loads(reply)["error"]
    status, _, reply = served.request("POST", "/api/answers", None, {"Content-Length": "-5"})
    assert status == 400
    assert served.request("POST", "/elsewhere", b"{}")[0] == 404
    assert lines(served.study.dir) == []
    assert served.post(answer_all(session, lambda i, t: "right"))[0] == 200
    assert len(lines(served.study.dir)) == 1


def test_concurrent_participants_lose_no_line_and_tear_none(served):
    sessions = [served.session() for _ in range(12)]
    results = []

    def take_part(session):
        results.append(served.post(answer_all(session, lambda i, t: "left" if i % 3 else "right"))[0])

    threads = [threading.Thread(target=take_part, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 12
    records = [json.loads(line) for line in lines(served.study.dir)]
    assert sorted(r["participant"] for r in records) == sorted(s["participant"] for s in sessions)


def test_appends_from_separate_stores_are_whole_lines(tmp_path):
    # Two stores (two servers on one directory) share only the file lock; long lines
    # show a torn write if there is one.
    path = tmp_path / server.ANSWERS
    stores = [server.AnswerStore(path), server.AnswerStore(path)]

    def write(worker):
        for i in range(25):
            stores[worker % 2].append({"worker": worker, "i": i, "pad": str(worker) * 70_000})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = server.AnswerStore(path).read()
    assert sorted((r["worker"], r["i"]) for r in records) == [(w, i) for w in range(6) for i in range(25)]
    assert all(r["pad"] == str(r["worker"]) * 70_000 for r in records)


def test_an_append_after_a_torn_line_starts_on_its_own_line(tmp_path):
    path = tmp_path / server.ANSWERS
    path.write_bytes(b'{"participant": "a"}\n{"partic')
    server.AnswerStore(path).append({"participant": "b"})
    notes = []
    assert server.AnswerStore(path).read(notes.append) == [{"participant": "a"}, {"participant": "b"}]
    assert notes == [f"note: {path} line 2 is not a JSON object; skipped"]


def test_a_restarted_server_keeps_the_earlier_answers(served):
    first = served.session()
    assert served.post(answer_all(first, lambda i, t: "left"))[0] == 200
    served.stop()
    again = Served(served.study.dir)
    try:
        assert again.post(answer_all(first, lambda i, t: "left"))[0] == 409
        second = again.session()
        assert second["direction"] != first["direction"]  # alternation goes on across the restart
        assert again.post(answer_all(second, lambda i, t: "right"))[0] == 200
    finally:
        again.stop()
    records = [json.loads(line) for line in lines(served.study.dir)]
    assert [r["participant"] for r in records] == [first["participant"], second["participant"]]


def test_wilson_interval_against_hand_computed_values():
    # The bounds are the roots p of (k/n - p)^2 = z^2 p (1 - p) / n, z = 1.959964; for 7 of 10:
    # 1.384146 p^2 - 1.784146 p + 0.49 = 0, p = (1.784146 -+ 0.685748) / 2.768292.
    assert analysis.wilson_interval(7, 10) == pytest.approx((0.396778, 0.892209), abs=1e-6)
    assert analysis.wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    assert analysis.wilson_interval(10, 10) == pytest.approx((0.722467, 1.0), abs=1e-6)
    assert analysis.wilson_interval(50, 100) == pytest.approx((0.403832, 0.596168), abs=1e-6)
    assert analysis.wilson_interval(0, 0) == (None, None)


def record(participant, direction, trials):
    """A recorded session from (real side, choice, practice) triples."""
    return {"participant": participant, "direction": direction, "start": "t",
            "trials": [{"real": real, "choice": choice, "practice": practice} for real, choice, practice in trials]}  # fmt: skip


def test_fooling_rate_counts_only_scored_trials():
    records = [
        # practice trials fooled every time: they must not count
        record("p1", "a2b", [("left", "right", True), ("left", "right", True), ("left", "right", False),
                             ("right", "right", False), ("left", "left", False), ("right", "left", False)]),
        record("p2", "a2b", [("left", "right", True), ("left", "left", False), ("right", "right", False)]),
        record("p3", "b2a", [("left", "right", False)]),
    ]  # fmt: skip
    summary = analysis.summarize(records, ["a2b", "b2a"])
    a2b = summary["a2b"]
    assert (a2b["participants"], a2b["scored_trials"], a2b["fooled"]) == (2, 6, 2)
    assert a2b["fooling_rate"] == pytest.approx(2 / 6)
    assert a2b["ci95"] == pytest.approx(list(analysis.wilson_interval(2, 6)))
    assert [(p["participant"], p["fooled"], p["scored_trials"]) for p in a2b["per_participant"]] == [
        ("p1", 2, 4),
        ("p2", 0, 2),
    ]
    assert summary["b2a"]["fooling_rate"] == 1.0 and summary["b2a"]["participants"] == 1


def test_study_report_cli_table_and_json(served, tmp_path):
    session = served.session()
    served.post(answer_all(session, lambda i, t: "left"))
    [line] = lines(served.study.dir)
    scored = [t for t in json.loads(line)["trials"] if not t["practice"]]
    fooled = sum(t["choice"] != t["real"] for t in scored)
    result = CliRunner().invoke(main, ["study-report", str(served.study.dir), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r.json").read_text())
    d = summary["directions"][session["direction"]]
    assert (d["participants"], d["scored_trials"], d["fooled"]) == (1, TRIALS, fooled)
    assert f"{fooled / TRIALS:.1%}" in result.stdout and session["participant"] in result.stdout
    other = summary["directions"]["b2a" if session["direction"] == "a2b" else "a2b"]
    assert other["scored_trials"] == 0 and other["fooling_rate"] is None


def test_study_report_with_the_domain_classifier(tmp_path, monkeypatch):
    # 11 images per domain, 6 of each in the a2b study: the classifier trains on the other 5.
    monkeypatch.setenv("TFCYCLEGAN_CACHE", str(tmp_path / "cache"))
    run = write_noise_run(tmp_path, 11)
    server.prepare(run, tmp_path / "study", directions=["a2b"], count=PRACTICE + TRIALS, log=lambda m: None)
    result = analysis.analyse(tmp_path / "study", with_classifier=True, log=lambda m: None)
    v = result["classifier"]["a2b"]
    assert v["images"] == PRACTICE + TRIALS and 0 <= v["accuracy"] <= 1
    assert (v["fooling_rate"] is None) == (not v["meaningful"])
    assert "domain classifier on the same images" in format_table(result)


def test_study_report_of_a_folder_that_is_no_study(tmp_path):
    result = CliRunner().invoke(main, ["study-report", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.stderr
        == f"error: {tmp_path} is not a study directory (no manifest.json); make one with `tfcyclegan study`\n"
    )


def test_study_into_a_directory_of_another_model_is_one_line(prepared, tmp_path):
    result = CliRunner().invoke(main, ["study", str(tmp_path), "--study-dir", str(prepared)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: study directory {prepared} was made for model ")


def test_the_study_command_prints_its_url_and_stops_cleanly_on_ctrl_c(run_dir, tmp_path):
    command = [os.path.join(os.path.dirname(sys.executable), "tfcyclegan"), "study", str(run_dir), "--port", "0",
               "--practice", "1", "--trials", "2", "--study-dir", str(tmp_path / "s")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)  # fmt: skip
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/"), process.stderr.read()
        port = int(url.rsplit(":", 1)[1].strip("/"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/session")
        session = json.loads(connection.getresponse().read())
        assert len(session["sequence"]) == 3 and session["direction"] == "a2b"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    # Stopped before any session finished: it said "answers are in .../answers.jsonl", a file that did not exist.
    assert "Traceback" not in stderr and stderr.rstrip().endswith(
        f"stopped before any session finished; no answers were recorded in {tmp_path / 's'}"
    )


class QuitAtOnce:
    """Stands in for StudyServer: takes the address, then serve_forever is Ctrl-C."""

    def __init__(self, served_study, host, port):
        self.url = f"http://{host}:{port}/"

    def serve_forever(self):
        raise KeyboardInterrupt

    def server_close(self):
        pass


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "localhost", "127.0.0.2", "::1"])
def test_a_host_beyond_loopback_is_warned_about(prepared, host, monkeypatch):
    monkeypatch.setattr(server, "StudyServer", QuitAtOnce)
    result = CliRunner().invoke(main, ["study", str(prepared.parent / "run"), "--study-dir", str(prepared),
                                       "--host", host, "--port", "9"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == f"http://{host}:9/\n"
    warning = f"warning: listening on {host}: anyone who can reach this machine on that network can take part"
    assert (warning in result.stderr.splitlines()) == (host in ("0.0.0.0", "10.1.2.3"))


def test_too_many_trials_are_refused_before_the_study_is_prepared(run_dir, tmp_path):
    result = CliRunner().invoke(main, ["study", str(run_dir), "--trials", "5000", "--study-dir", str(tmp_path / "st")])
    assert result.exit_code == 1 and "--practice + --trials must be at most 1000" in result.stderr
    assert not (tmp_path / "st").exists()


# Hostile study directories, answers and clients (issue #25 items 9, 11, 15, 17, 18).


def study_copy(prepared, tmp_path):
    import shutil

    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)
    return directory


def test_an_image_linked_outside_the_study_is_never_served(prepared, tmp_path):
    directory = study_copy(prepared, tmp_path)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    image = directory / "images" / f"{server.read_manifest(directory)['directions']['a2b']['real'][0]['id']}.png"
    image.unlink()
    image.symlink_to(secret)
    with pytest.raises(UserError, match=f"{image} leads to {secret}, outside {directory / 'images'}"):
        server.Study(directory, practice=PRACTICE, trials=TRIALS, log=lambda m: None)
    # Linked after the server started: a 404, never the secret.
    image.unlink()
    shutil_copy = (directory / "sources").iterdir().__next__().read_bytes()
    image.write_bytes(shutil_copy)
    served = Served(directory)
    try:
        image.unlink()
        image.symlink_to(secret)
        status, _, body = served.request("GET", f"/images/{image.name}")
        assert (status, json.loads(body)) == (404, {"error": "not found"})
    finally:
        served.stop()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["directions"]["a2b"]["real"][0].update(id="../../../../tmp/secret"),
         'a2b image id "../../../../tmp/secret" is not 16 hex digits'),
        (lambda m: m["directions"]["b2a"]["fake"][1].update(id="0123456789abcdef\n"), "is not 16 hex digits"),
        (lambda m: m.pop("model"), '"model" is not a path'),
        (lambda m: m["directions"]["a2b"].update(real="x"), '"a2b" has no real images'),
        (lambda m: m.update(domain_a=[]), '"domain_a" lacks its spec, name or root'),
    ],
)  # fmt: skip
def test_a_tampered_manifest_is_refused_by_study_and_study_report(prepared, tmp_path, change, message):
    directory = study_copy(prepared, tmp_path)
    manifest = json.loads((directory / server.MANIFEST).read_text())
    change(manifest)
    (directory / server.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="not a study manifest as `tfcyclegan study` writes it") as caught:
        server.Study(directory, log=lambda m: None)
    assert message in str(caught.value)
    result = CliRunner().invoke(main, ["study-report", str(directory)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {directory / server.MANIFEST} is not a study manifest") and message in line


def run_cli(*args, timeout=120):
    """The installed command in a child process (a hang fails the test instead of stalling it)."""
    command = [os.path.join(os.path.dirname(sys.executable), "tfcyclegan"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, preexec_fn=default_sigint)


def test_answers_that_are_a_pipe_or_an_endless_device_are_refused_at_once(prepared, tmp_path):
    directory = study_copy(prepared, tmp_path)
    answers = directory / server.ANSWERS
    for make, kind in ((os.mkfifo, "a named pipe"), (lambda p: p.symlink_to("/dev/zero"), "a character device")):
        answers.unlink(missing_ok=True)
        make(answers)
        done = run_cli("study-report", directory)
        assert done.returncode == 1, done.stderr
        assert (
            done.stderr
            == f"error: cannot read {answers}: not a regular file ({kind}); move it away (the study starts a new one)\n"
        )
        with pytest.raises(UserError, match="not a regular file"):
            server.Study(directory, practice=PRACTICE, trials=TRIALS, log=lambda m: None)
        with pytest.raises(OSError, match="not a regular file"):
            server.AnswerStore(answers).append({"participant": "x"})


def test_malformed_answer_lines_are_skipped_with_a_note(served):
    session = served.session()
    assert served.post(answer_all(session, lambda i, t: "right"))[0] == 200
    good = json.loads(lines(served.study.dir)[0])
    other = "1" * 16
    bad = [{**good, "participant": other, "trials": "many"}, {**good, "participant": other, "trials": 7},
           {**good, "participant": other, "trials": [{k: v for k, v in t.items() if k != "choice"} for t in good["trials"]]},
           {**good, "participant": ["a", "list"]}, {**good, "participant": other + "\n"}]  # fmt: skip
    with open(served.study.dir / server.ANSWERS, "a") as file:
        file.writelines(json.dumps(record) + "\n" for record in bad)
    result = CliRunner().invoke(main, ["study-report", str(served.study.dir)])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "is not a recorded session" in line]
    assert [line.split(" line ")[1].split(" is")[0] for line in notes] == ["2", "3", "4", "5", "6"]
    assert "its trials are not a list" in notes[0] and "lacks its choice" in notes[2] and "not an id" in notes[3]
    assert "1 sessions" in result.stdout
    restarted = server.Study(served.study.dir, practice=PRACTICE, trials=TRIALS, log=lambda m: None)
    assert restarted.recorded == {session["participant"]}


def test_hostile_posts_get_a_400_not_a_traceback(served, capfd):
    session = served.session()
    good = answer_all(session, lambda i, t: "left")
    body = json.dumps(good).encode()
    for length in ("²", "١٢", "1\u00b2"):
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        connection.putrequest("POST", "/api/answers")
        connection.putheader("Content-Length", length.encode())
        connection.endheaders(body)
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (400, {"error": "Content-Length required"})
        connection.close()
    huge = {**good, "trials": [{**good["trials"][0], "rt_ms": 10**400}, *good["trials"][1:]]}
    status, reply = served.post(huge)
    assert (status, reply) == (400, {"error": f"trials[0].rt_ms must be between 0 and {server.MAX_MS}"})
    status, reply = served.post({**good, "participant": session["participant"] + "\n"})
    assert (status, reply) == (400, {"error": "participant must be the id the session came with"})
    assert lines(served.study.dir) == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_gone_before_its_reply_leaves_no_traceback(served, capfd):
    for gone in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset"), TimeoutError("timed out")):
        try:
            raise gone
        except OSError:
            served.server.handle_error(None, ("127.0.0.1", 1))
    assert capfd.readouterr().err == ""
    # A body cut short: a 400 saying so, not a JSON error about half a body.
    connection = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    connection.sendall(b"POST /api/answers HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
    connection.shutdown(socket.SHUT_WR)
    reply = connection.makefile("rb").read()
    connection.close()
    assert reply.startswith(b"HTTP/1.0 400") and b"body shorter than Content-Length" in reply


def test_fifty_clients_connecting_at_once_are_all_queued(prepared):
    # The server is not accepting yet: every connection waits in the listen backlog.
    study = server.Study(prepared, practice=PRACTICE, trials=TRIALS, log=lambda m: None)
    listening = server.StudyServer(study, "127.0.0.1", 0)
    clients = []
    try:
        for _ in range(50):
            clients.append(socket.create_connection(listening.server_address, timeout=2))
    finally:
        for client in clients:
            client.close()
        listening.server_close()
    assert len(clients) == 50


@pytest.mark.parametrize("name", ["manifest.json", "answers.jsonl", "images/x.json"])
def test_study_report_json_never_replaces_the_study_s_own_files(served, name):
    target = served.study.dir / name
    before = target.read_bytes() if target.exists() else None
    result = CliRunner().invoke(main, ["study-report", str(served.study.dir), "--json", str(target)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == (
        f"error: --json {target} is a file of the study directory {served.study.dir}, which it would replace; "
        "give a path outside its own files\n"
    )
    assert (target.read_bytes() if target.exists() else None) == before


def test_study_report_json_follows_nothing_and_replaces_no_special_file(served, tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("keep")
    link, pipe = tmp_path / "link.json", tmp_path / "pipe.json"
    link.symlink_to(elsewhere)
    os.mkfifo(pipe)
    for target, kind in ((link, "a symbolic link"), (pipe, "a named pipe"), (tmp_path, "a folder"),
                         (os.devnull, "a character device")):  # fmt: skip
        result = CliRunner().invoke(main, ["study-report", str(served.study.dir), "--json", str(target)])
        assert result.exit_code == 1, result.output
        assert (
            result.stderr
            == f"error: --json {target} is {kind}, not a regular file; give a new path or a regular file\n"
        )
    assert link.is_symlink() and elsewhere.read_text() == "keep" and pipe.is_fifo()
    with pytest.raises(UserError, match="is a named pipe"):
        analysis.write_json({}, pipe)
    regular = tmp_path / "old.json"
    regular.write_text("old")
    assert CliRunner().invoke(main, ["study-report", str(served.study.dir), "--json", str(regular)]).exit_code == 0
    assert json.loads(regular.read_text())["sessions"] == 0


def test_the_classifier_never_trains_on_the_images_the_study_shows(prepared, run_dir, tmp_path, monkeypatch):
    from tfcyclegan.quality import classifier

    # All 5 images of each domain are in the study: nothing is left to train it on.
    result = analysis.analyse(prepared, with_classifier=True, log=lambda m: None)
    assert result["classifier"] == {
        "unavailable": "classifier not measured: 0 (A) and 0 (B) training images are not in the study (at least 5 "
        "per domain needed to train it on other images than it is scored on); give the domains a test split or more "
        "images"
    }
    assert result["classifier"]["unavailable"] in format_table(result)
    # With more images, it trains on the others only.
    for domain in "AB":
        for i in range(6):
            Image.new("RGB", (36, 36), (40 * i, 0, 0)).save(run_dir.parent / domain / f"extra_{i}.png")
    trained = []

    class Judge:
        def accuracy(self, real_a, real_b):
            return {"accuracy": 1.0, "accuracy_a": 1.0, "accuracy_b": 1.0}

        def fooling_rates(self, fake_b, fake_a):
            return {"a2b": 0.5, "b2a": 0.5}

    def load_or_train(files_a, files_b, size, cache_dir, log):
        trained.append((files_a, files_b))
        return Judge(), None, False

    monkeypatch.setattr(classifier, "load_or_train", load_or_train)
    try:
        analysis.analyse(prepared, with_classifier=True, log=lambda m: None)
    finally:
        for extra in run_dir.parent.glob("?/extra_*.png"):
            extra.unlink()
    [(files_a, files_b)] = trained
    assert sorted(os.path.basename(f) for f in files_a) == [f"extra_{i}.png" for i in range(6)]
    assert sorted(os.path.basename(f) for f in files_b) == [f"extra_{i}.png" for i in range(6)]


def test_ctrl_c_after_a_finished_session_names_the_answers(prepared, monkeypatch, tmp_path):
    monkeypatch.setattr(server, "StudyServer", QuitAtOnce)
    study_dir = tmp_path / "s"
    shutil.copytree(prepared, study_dir)
    answers = study_dir / server.ANSWERS
    answers.write_text("")
    result = CliRunner().invoke(main, ["study", str(prepared.parent / "run"), "--study-dir", str(study_dir)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == f"stopped; answers are in {answers}"
