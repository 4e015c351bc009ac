// Classify: one image (POST /predict) or many (POST /predict/batch, in chunks within the batch
// limits), from the picker, the camera, a drop or a paste.
import { call, inWords } from "./api.js";
import { LIMITS } from "./limits.js";
import { $, el, put, percent, bytes } from "./dom.js";
import { classBars } from "./charts.js";
import { feedbackControls } from "./feedback.js";

// API Gateway hands a multipart body to Lambda base64-encoded, and the event must fit Lambda's
// payload limit: so a chunk carries at most 3/4 of it in image bytes, less room for the form.
const CHUNK_BYTES = Math.floor(LIMITS.max_payload_bytes * 0.75) - 64 * 1024;

let previews = [];

function clearPreviews() {
  for (const url of previews) URL.revokeObjectURL(url);
  previews = [];
}

function preview(file) {
  const url = URL.createObjectURL(file);
  previews.push(url);
  return el("img", { src: url, alt: `The image ${file.name || "pasted"}`, class: "preview" });
}

/** Chunks of files within the batch limits; a file over the chunk budget alone is refused here. */
export function chunks(files) {
  const out = [];
  let current = [];
  let size = 0;
  for (const file of files) {
    if (current.length && (current.length >= LIMITS.batch_max_images || size + file.size > CHUNK_BYTES)) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(file);
    size += file.size;
  }
  if (current.length) out.push(current);
  return out;
}

function singleResult(file, answer, elapsedMs) {
  const box = $("#single-result");
  put(box,
    el("div", { class: "result-image" }, preview(file)),
    el("div", { class: "result-text" },
      el("p", { class: "name" }, file.name || "pasted image"),
      el("p", { class: "label" }, answer.label),
      el("p", { class: "confidence" }, `${percent(answer.confidence)} confident (calibrated)`),
      classBars(answer.probabilities, { labels: LIMITS.labels, highlight: answer.label, title: `Probabilities of the ten classes; ${answer.label} is highest` }),
      el("p", { class: "meta" },
        `Model ${answer.model_version} · ${Math.round(elapsedMs)} ms round trip, ${answer.latency_ms ?? "–"} ms in the function`,
        answer.stored === false ? " · not stored" : ""),
      feedbackControls(answer)));
  box.hidden = false;
}

function batchCard(file, item) {
  if (item.error) {
    return el("li", { class: "card failed" }, preview(file),
      el("p", { class: "name" }, file.name || "pasted image"),
      el("p", { class: "error" }, item.error.message));
  }
  return el("li", { class: "card" }, preview(file),
    el("p", { class: "name" }, file.name || "pasted image"),
    el("p", { class: "label" }, item.label),
    el("p", { class: "confidence" }, percent(item.confidence)));
}

async function classifyOne(file) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  const started = performance.now();
  const answer = await call("POST", "/predict", { form });
  singleResult(file, answer, performance.now() - started);
  $("#classify-status").textContent = `${file.name || "The image"}: ${answer.label}, ${percent(answer.confidence)} confident.`;
}

async function classifyMany(files) {
  const grid = $("#batch-grid");
  const progress = $("#batch-progress");
  const summary = $("#batch-summary");
  grid.replaceChildren();
  progress.max = files.length;
  progress.value = 0;
  $("#batch-result").hidden = false;
  const labels = [];
  let failed = 0;
  for (const chunk of chunks(files)) {
    if (chunk.length === 1 && chunk[0].size > CHUNK_BYTES) {
      grid.append(batchCard(chunk[0], { error: { message: `${bytes(chunk[0].size)} is over the ${bytes(CHUNK_BYTES)} a request can carry.` } }));
      failed += 1;
      progress.value += 1;
      continue;
    }
    const form = new FormData();
    for (const file of chunk) form.append("files", file, file.name || "pasted.png");
    summary.textContent = `Sending ${chunk.length} image${chunk.length > 1 ? "s" : ""}…`;
    try {
      const answer = await call("POST", "/predict/batch", { form });
      answer.results.forEach((item, i) => {
        grid.append(batchCard(chunk[i], item));
        if (item.error) failed += 1;
        else labels.push(item.label);
      });
    } catch (error) {
      for (const file of chunk) grid.append(batchCard(file, { error: { message: inWords(error) } }));
      failed += chunk.length;
    }
    progress.value += chunk.length;
  }
  summary.textContent = `${files.length - failed} of ${files.length} classified${failed ? `, ${failed} refused` : ""}.`;
  $("#classify-status").textContent = `${files.length - failed} images classified: ${labels.join(", ")}.`;
}

export async function classify(files) {
  files = [...files].filter(Boolean);
  if (!files.length) return;
  clearPreviews();
  $("#classify-error").textContent = "";
  $("#classify-status").textContent = `Classifying ${files.length} image${files.length > 1 ? "s" : ""}…`;
  $("#single-result").hidden = true;
  $("#batch-result").hidden = true;
  try {
    if (files.length === 1) await classifyOne(files[0]);
    else await classifyMany(files);
  } catch (error) {
    const name = files.length === 1 ? `${files[0].name || "The image"}: ` : "";
    $("#classify-error").textContent = name + inWords(error);
    $("#classify-status").textContent = "Not classified.";
  }
}

export function setUp() {
  $("#batch-limit").textContent = `${LIMITS.batch_max_images} images`;
  for (const id of ["#images", "#camera"]) {
    $(id).addEventListener("change", (event) => {
      classify(event.target.files);
      event.target.value = "";
    });
  }
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    classify(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    if ($("#panel-classify").hidden) return;
    const files = [...(event.clipboardData?.files || [])];
    if (files.length) {
      event.preventDefault();
      classify(files);
    }
  });
}
