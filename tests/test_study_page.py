"""A real browser (headless Chromium through Selenium) takes part in a whole study session.

Skipped when Chromium, chromedriver or Selenium is missing, except under CI (env CI set),
where that is a failure. With TFCYCLEGAN_STUDY_FIGURE set, a screenshot of a trial is
also written to docs/figures/study.png (synthetic demo shapes and an untrained model).
"""

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_untrained_run
from PIL import Image
from tfcyclegan_cli.main import main

from tfcyclegan.data import demo
from tfcyclegan.study import server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "study.png"
PRACTICE, TRIALS = 2, 5
WAIT = 30  # seconds any one step may take on a loaded machine


def _browser_or_skip():
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = "selenium is not installed (pip install -e '.[test]')"
    else:
        absent = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
        missing = f"{' and '.join(absent)} missing (apt-get install chromium chromium-driver)" if absent else None
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A study of an untrained 64 px model between the demo's flat and striped shapes."""
    _browser_or_skip()
    root = tmp_path_factory.mktemp("browser")
    for domain, striped in (("A", False), ("B", True)):
        (root / domain).mkdir()
        for seed in range(8):
            Image.fromarray(demo.render(seed + 100 * striped, 64, striped)).save(root / domain / f"{seed}.png")
    run = write_untrained_run(root, image_size=64)
    server.prepare(run, root / "study", directions=["a2b"], count=PRACTICE + TRIALS, log=lambda m: None)
    return root / "study"


@pytest.fixture
def served(prepared, tmp_path, request):
    """The study served on a free loopback port in a thread, with the test's exposure."""
    directory = tmp_path / "study"
    shutil.copytree(prepared, directory)
    served = server.Study(directory, practice=PRACTICE, trials=TRIALS, log=lambda m: None, **request.param)
    httpd = server.StudyServer(served, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, httpd.url
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=520,420", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_for(driver, condition):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.02).until(condition)


# Notes every time the practice feedback is revealed, however briefly, so a slow test
# machine cannot miss it.
WATCH_FEEDBACK = """
window.feedbackShown = [];
const feedback = document.querySelector('#feedback');
new MutationObserver(() => {
  if (!feedback.hidden) window.feedbackShown.push(
    [Number(document.querySelector('#trial').dataset.index), feedback.dataset.correct, feedback.textContent]);
}).observe(feedback, {attributes: true, attributeFilter: ['hidden']});
"""


def trial_state(driver):
    return driver.execute_script(
        "const t = document.querySelector('#trial');"
        "return t.hidden ? null : [Number(t.dataset.index), t.dataset.phase];"
    )


def image_id(driver, side):
    return driver.find_element("id", side).get_attribute("src").rsplit("/", 1)[1].removesuffix(".png")


@pytest.mark.parametrize("served", [{"exposure_ms": 150}], indirect=True)
def test_a_browser_completes_a_session_and_the_report_counts_it(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as seen

    served_study, url = served
    truth = served_study.truth["a2b"]
    browser.get(url)
    browser.execute_script(WATCH_FEEDBACK)
    wait_for(browser, seen.element_to_be_clickable((By.ID, "start"))).click()
    choices, feedback = [], []
    for index in range(1, PRACTICE + TRIALS + 1):
        wait_for(browser, lambda d, i=index: trial_state(d) == [i, "answering"])
        practice = index <= PRACTICE
        progress = browser.find_element(By.ID, "progress").text
        assert progress == f"trial {index} of {PRACTICE + TRIALS}" + (" (practice)" if practice else "")
        left, right = image_id(browser, "left"), image_id(browser, "right")
        assert sorted((truth[left], truth[right])) == ["fake", "real"]
        for side in ("left", "right"):
            image = browser.find_element(By.ID, side)
            assert not image.is_displayed()  # hidden once answering starts
            size = browser.execute_script("const i = arguments[0]; return [i.naturalWidth, i.width];", image)
            assert size == [64, 64]  # shown at the stored size, not upscaled
        real = "left" if truth[left] == "real" else "right"
        choice = ("left", "right")[index % 3 == 0]
        if index % 2:
            browser.find_element(By.CSS_SELECTOR, f'[data-choice="{choice}"]').click()
        else:
            browser.find_element(By.TAG_NAME, "body").send_keys(
                Keys.ARROW_LEFT if choice == "left" else Keys.ARROW_RIGHT
            )
        if practice:
            verdict = "Right" if choice == real else "Wrong"
            feedback.append([index, str(choice == real).lower(), f"{verdict}: the {real} image was the real one."])
        else:
            choices.append((choice, real))
    done = wait_for(browser, seen.visibility_of_element_located((By.ID, "done")))
    assert browser.execute_script("return window.feedbackShown;") == feedback
    correct = sum(choice == real for choice, real in choices)
    assert f"in {correct} of {TRIALS} scored trials" in done.text

    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["study-report", str(served_study.dir), "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    a2b = json.loads(report_path.read_text())["directions"]["a2b"]
    fooled = sum(choice != real for choice, real in choices)
    assert (a2b["participants"], a2b["scored_trials"], a2b["fooled"]) == (1, TRIALS, fooled)
    assert a2b["fooling_rate"] == fooled / TRIALS


@pytest.mark.skipif(not os.environ.get("TFCYCLEGAN_STUDY_FIGURE"), reason="set TFCYCLEGAN_STUDY_FIGURE to redraw")
@pytest.mark.parametrize("served", [{"exposure_ms": 60000}], indirect=True)
def test_screenshot_of_a_trial(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen

    browser.get(served[1])
    wait_for(browser, seen.element_to_be_clickable((By.ID, "start"))).click()
    wait_for(browser, lambda d: trial_state(d) == [1, "showing"])
    FIGURE.write_bytes(browser.get_screenshot_as_png())
    assert FIGURE.stat().st_size < 300_000
