// Monitoring (operators): GET /monitoring?hours=N, the drift score against its threshold, the
// window's class distribution against the reference, mean confidence, low-confidence share and
// the accuracy measured by feedback.
import { call, inWords } from "./api.js";
import { LIMITS } from "./limits.js";
import { $, el, put, percent } from "./dom.js";
import { gauge, pairedBars } from "./charts.js";

function figure(name, value, reference) {
  return el("div", { class: "figure" }, el("dt", {}, name), el("dd", {}, value, reference ? el("span", { class: "meta" }, ` (reference ${reference})`) : null));
}

async function load(event) {
  event?.preventDefault();
  $("#monitoring-error").textContent = "";
  const out = $("#monitoring-report");
  try {
    const report = await call("GET", "/monitoring", { query: { hours: $("#monitoring-hours").value } });
    const drift = report.drift || {};
    const words = !drift.enough_data
      ? `Not enough data for a drift verdict: ${report.predictions} predictions${drift.min_predictions ? ` of the ${drift.min_predictions} needed` : ""}.`
      : drift.drifting
        ? `Drifting: the predicted classes are ${drift.value.toFixed(3)} away from the reference, over the ${drift.threshold} threshold.`
        : `No drift: ${drift.value.toFixed(3)}, under the ${drift.threshold} threshold.`;
    put(out,
      el("p", { class: `verdict${drift.drifting ? " alarm" : ""}` }, words),
      drift.note ? el("p", { class: "meta" }, drift.note) : null,
      el("figure", {}, el("figcaption", {}, `Drift (${drift.metric || "score"})`), gauge(drift.value ?? null, drift.threshold ?? 0.1, { verdict: Boolean(drift.enough_data) })),
      el("dl", { class: "figures" },
        figure("model", report.model_version),
        figure("predictions", String(report.predictions)),
        figure("mean confidence", percent(report.mean_confidence), percent(report.reference_mean_confidence)),
        figure("low-confidence share", percent(report.low_confidence_share), report.reference_low_confidence_share !== undefined ? percent(report.reference_low_confidence_share) : null),
        figure("feedback", `${report.feedback?.count ?? 0} answers, accuracy ${percent(report.feedback?.accuracy)}`)),
      el("figure", {}, el("figcaption", {}, "Predicted classes in the window against the reference"),
        pairedBars(report.class_distribution || {}, report.reference_distribution || {}, LIMITS.labels, "Class distribution against the reference")));
  } catch (error) {
    $("#monitoring-error").textContent = inWords(error);
  }
}

export function setUp() {
  $("#monitoring-form").addEventListener("submit", load);
}

export const show = () => load();
