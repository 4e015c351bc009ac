// Models: every version (GET /models) with its accuracy and which one serves; a version's
// per-class accuracy and confusion matrix (GET /models/{version}); operators promote or roll
// back (POST /models/{version}/promote), with a confirmation, and a second one (force) for a
// version the gate rejected.
import { call, caller, inWords } from "./api.js";
import { LIMITS } from "./limits.js";
import { $, el, put, percent, when } from "./dom.js";
import { classBars, heatMap } from "./charts.js";
import { confirmAction } from "./confirm.js";

let current = null;

function accuracyOf(version) {
  return version.metrics?.accuracy ?? version.test_accuracy ?? version.accuracy;
}

async function promote(version) {
  const rejected = version.status === "rejected";
  const rollback = version.status === "promoted" || version.status === "baseline";
  const ok = await confirmAction({
    title: `${rollback ? "Roll back to" : "Promote"} ${version.version}?`,
    text: `Predictions switch from ${current} to ${version.version} (${percent(accuracyOf(version), 2)} on the base test set) within a minute.`
      + (rejected ? ` The gate rejected it: ${version.reason || "no reason recorded"}.` : ""),
    ok: rollback ? "Roll back" : "Promote",
    extra: rejected ? "I know the gate rejected this version: promote it anyway" : null,
  });
  if (!ok) return;
  try {
    const answer = await call("POST", `/models/${encodeURIComponent(version.version)}/promote`, { json: rejected ? { force: true } : {} });
    $("#models-message").textContent = `${answer.current_version} serves now (before: ${answer.previous_version}).`;
    await load();
  } catch (error) {
    $("#models-error").textContent = inWords(error);
  }
}

async function details(version) {
  const box = $("#model-card");
  put(box, el("p", {}, `Loading ${version}…`));
  try {
    const model = await call("GET", `/models/${encodeURIComponent(version)}`);
    const card = model.card || {};
    const labels = card.labels || LIMITS.labels;
    put(box,
      el("h3", {}, `${model.version}${model.current ? " (serving)" : ""}`),
      el("p", { class: "meta" }, `${model.status} · parent ${card.parent_version || model.parent_version || "–"} · `
        + `accuracy ${percent(card.accuracy ?? accuracyOf(model), 2)} on ${card.images || "the"} test images`
        + (card.training_data?.images ? ` · trained on ${card.training_data.images} images` : "")),
      model.reason ? el("p", { class: "error" }, `Rejected: ${model.reason}`) : null,
      el("div", { class: "two" },
        el("figure", {}, el("figcaption", {}, "Accuracy per class"),
          classBars(card.per_class || model.metrics?.per_class || {}, { labels, title: "Accuracy per class" })),
        card.confusion_matrix
          ? el("figure", {}, el("figcaption", {}, "Confusion matrix (rows: true class, columns: predicted)"), heatMap(card.confusion_matrix, labels))
          : null));
  } catch (error) {
    put(box, el("p", { class: "error" }, inWords(error)));
  }
}

async function load() {
  $("#models-error").textContent = "";
  try {
    const answer = await call("GET", "/models");
    current = answer.current_version;
    const operator = caller.role === "operator";
    const table = $("#models-table");
    const caption = table.querySelector("caption");
    table.replaceChildren(caption,
      el("thead", {}, el("tr", {}, ["version", "status", "accuracy", "created", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, answer.versions.map((version) => el("tr", { class: version.current ? "serving" : "", "data-version": version.version },
        el("th", { scope: "row" }, version.version, version.current ? el("span", { class: "badge" }, "serving") : null),
        el("td", {}, version.status),
        el("td", {}, percent(accuracyOf(version), 2)),
        el("td", {}, version.created_at ? when(version.created_at) : "–"),
        el("td", {}, el("div", { class: "actions" },
          el("button", { type: "button", class: "small", onclick: () => details(version.version), "aria-label": `Details of ${version.version}` }, "Details"),
          operator && !version.current
            ? el("button", { type: "button", class: "small", onclick: () => promote(version),
              "aria-label": `${version.status === "promoted" || version.status === "baseline" ? "Roll back to" : "Promote"} ${version.version}` },
            version.status === "promoted" || version.status === "baseline" ? "Roll back" : "Promote")
            : null))))));
  } catch (error) {
    $("#models-error").textContent = inWords(error);
  }
}

export function setUp() {
  $("#models-refresh").addEventListener("click", load);
}

export const show = load;
