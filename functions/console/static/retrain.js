// Retrain (operators): start a job (POST /retrain) and follow it (GET /retrain/{job_id}): a
// progress bar, the epoch, the time left, and the training curve drawn as epochs arrive (the job
// record holds only the latest epoch's figures, so the page keeps the points it has seen), then
// the gate's verdict in words.
import { call, inWords, ApiError } from "./api.js";
import { $, el, put, percent, seconds, sleep } from "./dom.js";
import { trainingCurve } from "./charts.js";

const FINISHED = ["succeeded", "rejected", "failed"];
let following = null;

function verdict(job) {
  if (job.status === "succeeded") {
    const promoted = job.promoted !== false;
    return `The gate passed: version ${job.version} scored ${percent(job.test_accuracy, 2)} on the base test set`
      + (promoted ? " and now serves." : "; it is a candidate, not promoted.");
  }
  if (job.status === "rejected") {
    const reasons = (job.gate && job.gate.reasons) || [];
    return `The gate rejected version ${job.version} (${percent(job.test_accuracy, 2)} on the base test set): `
      + `${reasons.length ? reasons.join("; ") : job.reason || "no reason recorded"}. The serving model stays; `
      + "an operator may still promote it from Models.";
  }
  return `The job failed: ${job.reason || "no reason recorded"}.`;
}

async function follow(jobId) {
  following = jobId;
  const points = new Map();
  $("#retrain-job").hidden = false;
  $("#retrain-verdict").textContent = "";
  const progress = $("#retrain-progress");
  progress.value = 0;
  put($("#retrain-curve"));
  while (following === jobId) {
    let job;
    try {
      job = await call("GET", `/retrain/${encodeURIComponent(jobId)}`);
    } catch (error) {
      $("#retrain-error").textContent = inWords(error);
      await sleep(3000);
      continue;
    }
    $("#retrain-error").textContent = "";
    const epochs = job.epochs || 0;
    if (job.epoch && typeof job.loss === "number") points.set(job.epoch, { epoch: job.epoch, loss: job.loss, accuracy: job.accuracy });
    const done = FINISHED.includes(job.status);
    progress.max = Math.max(1, epochs);
    progress.value = done ? progress.max : Math.min(job.epoch || 0, progress.max);
    const parts = [`Job ${job.job_id}: ${job.status}`, `${job.mode}`];
    if (epochs) parts.push(`epoch ${job.epoch || 0} of ${epochs}`);
    if (!done && job.seconds_left !== undefined) parts.push(`${seconds(job.seconds_left)} left`);
    if (typeof job.loss === "number") parts.push(`loss ${job.loss.toFixed(3)}`, `training accuracy ${percent(job.accuracy)}`);
    $("#retrain-state").textContent = parts.join(" · ");
    put($("#retrain-curve"), trainingCurve([...points.values()].sort((a, b) => a.epoch - b.epoch), epochs));
    if (done) {
      $("#retrain-verdict").textContent = verdict(job);
      $("#retrain-verdict").dataset.status = job.status;
      following = null;
      return job;
    }
    await sleep(1000);
  }
  return null;
}

async function start(event) {
  event.preventDefault();
  $("#retrain-error").textContent = "";
  const body = { mode: $("#retrain-mode").value, epochs: Number($("#retrain-epochs").value) };
  if ($("#retrain-budget").value) body.budget_seconds = Number($("#retrain-budget").value);
  if ($("#retrain-images").value) body.max_images = Number($("#retrain-images").value);
  try {
    const job = await call("POST", "/retrain", { json: body });
    follow(job.job_id);
  } catch (error) {
    const running = error instanceof ApiError && error.status === 409 && error.message.match(/job ([0-9a-f]{32})/);
    $("#retrain-error").textContent = inWords(error) + (running ? " Following it below." : "");
    if (running) follow(running[1]);
  }
}

export function setUp() {
  $("#retrain-form").addEventListener("submit", start);
}

export function show() {}
