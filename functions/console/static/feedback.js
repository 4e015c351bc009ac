// Correcting a prediction: "right", or the true class (POST /predictions/{id}/feedback). A server
// without the route answers 404 route_not_found: the controls then say feedback is not available.
import { call, inWords, ApiError } from "./api.js";
import { LIMITS } from "./limits.js";
import { el } from "./dom.js";
import { confirmAction } from "./confirm.js";

let unavailable = false;

function describe(feedback) {
  if (!feedback) return "";
  if (feedback.correct === true || (feedback.label && feedback.label === feedback.predicted)) return "Marked right.";
  return feedback.label ? `Corrected to ${feedback.label}.` : "Feedback recorded.";
}

/** Controls for one prediction record; ``onChange(record)`` gets the updated record. */
export function feedbackControls(record, onChange) {
  const status = el("p", { class: "feedback-status", "aria-live": "polite" }, describe(record.feedback));
  const select = el("select", { "aria-label": `True class of ${record.image_name || "this image"}` },
    el("option", { value: "" }, "true class…"),
    LIMITS.labels.map((label) => el("option", { value: label }, label)));
  const right = el("button", { type: "button", class: "small" }, "Right");
  const fix = el("button", { type: "button", class: "small" }, "Correct it");
  const box = el("div", { class: "feedback" }, right, select, fix, status);
  if (unavailable) disable();

  function disable() {
    for (const control of [right, select, fix]) control.disabled = true;
    status.textContent = "Feedback is not available on this server.";
  }

  async function send(body) {
    status.textContent = "Sending…";
    try {
      let answer;
      try {
        answer = await call("POST", `/predictions/${encodeURIComponent(record.id)}/feedback`, { json: body });
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 409) throw error;
        const replace = await confirmAction({
          title: "Replace the feedback?",
          text: `${error.message} Replace it with ${body.label ? `“${body.label}”` : "“right”"}?`,
          ok: "Replace",
        });
        if (!replace) {
          status.textContent = "Kept the earlier feedback.";
          return;
        }
        answer = await call("POST", `/predictions/${encodeURIComponent(record.id)}/feedback`, { json: { ...body, replace: true } });
      }
      const updated = answer && answer.id ? answer : { ...record, feedback: answer?.feedback || body };
      status.textContent = `${describe(updated.feedback) || "Feedback recorded."} This image will be used in the next retraining.`;
      onChange?.(updated);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && error.code === "route_not_found") {
        unavailable = true;
        disable();
        return;
      }
      status.textContent = inWords(error);
    }
  }

  right.addEventListener("click", () => send({ correct: true }));
  fix.addEventListener("click", () => {
    if (!select.value) {
      status.textContent = "Pick the true class first.";
      select.focus();
      return;
    }
    send({ label: select.value });
  });
  return box;
}
