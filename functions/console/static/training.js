// Training data (operators): counts per class, labelled images (POST /training-data multipart), and
// a zip of class folders through a presigned POST straight to S3 (XHR, for its upload progress),
// then its ingest report (GET /training-data/uploads/{id}).
import { call, inWords } from "./api.js";
import { LIMITS } from "./limits.js";
import { $, el, put, bytes, sleep } from "./dom.js";

const ORDER = ["base", "user", "uploads", "feedback"];
const HEADINGS = { base: "base set", user: "yours", uploads: "uploads", feedback: "feedback" };

async function counts() {
  $("#training-error").textContent = "";
  try {
    const summary = await call("GET", "/training-data");
    const labels = summary.labels || {};
    const columns = [...new Set(Object.values(labels).flatMap((entry) => Object.keys(entry)))]
      .sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99));
    const table = $("#training-counts");
    const caption = table.querySelector("caption");
    table.replaceChildren(caption,
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "class"), columns.map((c) => el("th", { scope: "col" }, HEADINGS[c] || c)))),
      el("tbody", {}, LIMITS.labels.filter((l) => labels[l]).map((label) => el("tr", {},
        el("th", { scope: "row" }, label), columns.map((c) => el("td", {}, String(labels[label][c] ?? 0)))))));
  } catch (error) {
    $("#training-error").textContent = inWords(error);
  }
}

async function addImages(event) {
  event.preventDefault();
  const files = [...$("#training-files").files];
  const out = $("#training-result");
  if (files.length > LIMITS.max_direct_training_images) {
    put(out, el("p", { class: "error" }, `At most ${LIMITS.max_direct_training_images} images at a time; use a zip for more.`));
    return;
  }
  const form = new FormData();
  form.append("label", $("#training-label").value);
  for (const file of files) form.append("files", file, file.name);
  put(out, el("p", {}, `Uploading ${files.length} image${files.length > 1 ? "s" : ""}…`));
  try {
    const answer = await call("POST", "/training-data", { form });
    const { accepted, duplicate, rejected } = answer.counts;
    put(out,
      el("p", { class: "done" }, `${answer.label}: ${accepted} accepted, ${duplicate} already stored, ${rejected} rejected.`),
      el("ul", { class: "reasons" }, answer.results.filter((r) => r.status === "rejected").map((r) =>
        el("li", {}, el("span", { class: "name" }, r.name || "an image"), `: ${r.reason}`))));
    $("#training-form").reset();
    counts();
  } catch (error) {
    put(out, el("p", { class: "error" }, inWords(error)));
  }
}

function post(url, fields, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file, file.name); // S3 reads the fields up to the file: the file goes last
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.upload.addEventListener("progress", (event) => event.lengthComputable && onProgress(event.loaded / event.total));
    xhr.addEventListener("load", () => (xhr.status < 300 ? resolve() : reject(new Error(
      `S3 refused the upload (${xhr.status}): ${(xhr.responseText.match(/<Message>([^<]*)<\/Message>/) || [])[1] || xhr.statusText}`))));
    xhr.addEventListener("error", () => reject(new Error("The upload could not reach S3 (network or the page's connect-src).")));
    xhr.send(form);
  });
}

async function uploadZip(event) {
  event.preventDefault();
  const file = $("#zip-file").files[0];
  const report = $("#zip-report");
  const progress = $("#zip-progress");
  progress.value = 0;
  if (!file) return;
  if (file.size > LIMITS.max_upload_zip_bytes) {
    put(report, el("p", { class: "error" }, `${bytes(file.size)} is over the ${bytes(LIMITS.max_upload_zip_bytes)} limit for one zip.`));
    return;
  }
  try {
    put(report, el("p", {}, "Asking for an upload…"));
    const upload = await call("POST", "/training-data", { json: { upload: true } });
    put(report, el("p", {}, `Uploading ${file.name} (${bytes(file.size)})…`));
    await post(upload.url, upload.fields, file, (share) => { progress.value = share; });
    progress.value = 1;
    put(report, el("p", {}, "Uploaded; checking every image…"));
    let status;
    for (let i = 0; i < 600; i += 1) {
      status = await call("GET", `/training-data/uploads/${encodeURIComponent(upload.upload_id)}`);
      if (status.status === "completed" || status.status === "refused") break;
      await sleep(1000);
    }
    showReport(status);
    counts();
  } catch (error) {
    put(report, el("p", { class: "error" }, inWords(error)));
  }
}

function showReport(status) {
  const report = $("#zip-report");
  if (status.status === "refused") {
    put(report, el("p", { class: "error" }, `The zip was refused: ${status.reason}`));
    return;
  }
  const c = status.counts || {};
  put(report,
    el("p", { class: "done" }, `Ingested: ${c.accepted ?? 0} accepted, ${c.duplicate ?? 0} duplicates, ${c.rejected ?? 0} rejected.`),
    (status.rejected || []).length
      ? el("details", {}, el("summary", {}, `Rejections (${status.rejected.length})`),
        el("ul", { class: "reasons" }, status.rejected.map((r) => el("li", {}, el("span", { class: "name" }, r.name), `: ${r.reason}`))))
      : null);
}

export function setUp() {
  const select = $("#training-label");
  for (const label of LIMITS.labels) select.append(el("option", { value: label }, label));
  $("#zip-limit").textContent = bytes(LIMITS.max_upload_zip_bytes);
  $("#training-form").addEventListener("submit", addImages);
  $("#zip-form").addEventListener("submit", uploadZip);
  $("#training-refresh").addEventListener("click", counts);
}

export const show = counts;
