// The real-vs-fake protocol of the CycleGAN and pix2pix perceptual studies; served by
// tfcyclegan.study, which hands out a session (GET /api/session) and records it whole
// when it is finished (POST /api/answers). Plain browser JavaScript, no build step.
"use strict";

(() => {
  const FEEDBACK_MS = 1200; // how long a practice trial's feedback stays up
  const GAP_MS = 300; // blank pause between scored trials
  const $ = (selector) => document.querySelector(selector);
  const buttons = () => document.querySelectorAll("#answers button");

  let session = null;
  let answers = [];
  let index = 0;
  let sessionStart = 0;
  let onset = 0;
  let accepting = false;

  function show(id) {
    for (const name of ["intro", "trial", "done", "error"]) $(`#${name}`).hidden = name !== id;
  }

  function fail(message, canRetry) {
    $("#error-message").textContent = message;
    $("#retry").hidden = !canRetry;
    show("error");
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error(`cannot load ${url}`));
      image.src = url;
    });
  }

  // One image pixel never covers more than one screen pixel: no upscaling, also on high-DPI screens.
  function place(image, side) {
    const scale = Math.min(1, 1 / (window.devicePixelRatio || 1));
    image.id = side;
    image.alt = `${side} image`;
    image.style.width = `${image.naturalWidth * scale}px`;
    image.style.height = `${image.naturalHeight * scale}px`;
    $(`#${side}`).replaceWith(image);
  }

  function setPhase(phase) {
    $("#trial").dataset.phase = phase;
  }

  async function load() {
    try {
      const response = await fetch("/api/session", { cache: "no-store" });
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      session = await response.json();
    } catch (error) {
      fail(`The study could not be loaded (${error.message}). Reload the page to try again.`, false);
      return;
    }
    for (const element of document.querySelectorAll(".target")) element.textContent = session.target;
    const seconds = session.exposure_ms / 1000;
    $("#exposure").textContent = seconds === 1 ? "one second" : `${seconds} seconds`;
    $("#practice-count").textContent = session.practice;
    $("#scored-count").textContent = session.trials;
    $("#practice-note").hidden = session.practice === 0;
    $("#loading").hidden = true;
    $("#start").disabled = false;
  }

  async function runTrial() {
    const trial = session.sequence[index];
    const total = session.sequence.length;
    $("#progress").textContent = `trial ${index + 1} of ${total}${trial.practice ? " (practice)" : ""}`;
    $("#trial").dataset.index = index + 1;
    $("#trial").dataset.practice = trial.practice;
    $("#feedback").hidden = true;
    setPhase("loading");
    let images;
    try {
      images = await Promise.all([loadImage(`/images/${trial.left}.png`), loadImage(`/images/${trial.right}.png`)]);
    } catch (error) {
      fail(`An image could not be loaded (${error.message}). Reload the page to start again.`, false);
      return;
    }
    place(images[0], "left");
    place(images[1], "right");
    $("#pair").classList.remove("hidden");
    setPhase("showing");
    // The exposure counts from the first frame that paints the images.
    requestAnimationFrame(() => {
      onset = performance.now();
      setTimeout(() => {
        $("#pair").classList.add("hidden");
        for (const button of buttons()) button.disabled = false;
        accepting = true;
        setPhase("answering");
      }, session.exposure_ms);
    });
  }

  function answer(choice) {
    if (!accepting) return;
    accepting = false;
    for (const button of buttons()) button.disabled = true;
    const trial = session.sequence[index];
    answers.push({
      left: trial.left,
      right: trial.right,
      choice,
      rt_ms: Math.round((performance.now() - onset) * 10) / 10,
      practice: trial.practice,
    });
    index += 1;
    const next = index < session.sequence.length ? runTrial : finish;
    if (!trial.practice) {
      setPhase("pause");
      setTimeout(next, GAP_MS);
      return;
    }
    const correct = choice === trial.real;
    const feedback = $("#feedback");
    feedback.textContent = correct
      ? `Right: the ${trial.real} image was the real one.`
      : `Wrong: the ${trial.real} image was the real one.`;
    feedback.dataset.correct = correct;
    feedback.hidden = false;
    setPhase("feedback");
    setTimeout(next, FEEDBACK_MS);
  }

  async function finish() {
    setPhase("saving");
    const body = JSON.stringify({
      participant: session.participant,
      direction: session.direction,
      duration_ms: Math.round(performance.now() - sessionStart),
      trials: answers,
    });
    let response;
    let reply = {};
    try {
      response = await fetch("/api/answers", { method: "POST", headers: { "Content-Type": "application/json" }, body });
      reply = await response.json();
    } catch (error) {
      fail(`Your answers could not be sent (${error.message}). Keep this page open and try again.`, true);
      return;
    }
    if (response.status === 409) {
      $("#score").textContent = "Your answers are saved.";
    } else if (response.ok) {
      const percent = Math.round((100 * reply.correct) / reply.scored);
      $("#score").textContent =
        `You picked the real image in ${reply.correct} of ${reply.scored} scored trials (${percent} %).`;
    } else {
      fail(`Your answers were not accepted: ${reply.error || response.status}.`, true);
      return;
    }
    show("done");
  }

  $("#start").addEventListener("click", () => {
    if (!session) return;
    sessionStart = performance.now();
    show("trial");
    runTrial();
  });
  for (const button of buttons()) button.addEventListener("click", () => answer(button.dataset.choice));
  document.addEventListener("keydown", (event) => {
    if (!accepting || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
    event.preventDefault();
    answer(event.key === "ArrowLeft" ? "left" : "right");
  });
  $("#retry").addEventListener("click", () => {
    show("trial");
    finish();
  });
  load();
})();
