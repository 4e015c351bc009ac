// History: the caller's predictions, newest first, with their 32x32 model inputs (input_png) as
// thumbnails, paged by next_cursor, filtered by class, corrected (has_feedback) and wrong.
import { call, caller, inWords } from "./api.js";
import { LIMITS } from "./limits.js";
import { $, el, percent, when } from "./dom.js";
import { feedbackControls } from "./feedback.js";

let cursor = null;

function thumbnail(record) {
  // input_png is base64 from the API; anything else is not put in a URL
  if (typeof record.input_png === "string" && /^[A-Za-z0-9+/]+=*$/.test(record.input_png)) {
    return el("img", { class: "thumb", src: `data:image/png;base64,${record.input_png}`, width: 32, height: 32,
      alt: `The model's 32x32 input for ${record.image_name || "this prediction"}` });
  }
  return el("span", { class: "thumb none", "aria-hidden": "true" });
}

function row(record) {
  const item = el("li", { class: "record", "data-id": record.id });
  const render = (current) => {
    item.replaceChildren(
      thumbnail(current),
      el("div", { class: "record-text" },
        el("p", {}, el("strong", { class: "label" }, current.label), " ", percent(current.confidence),
          current.image_name ? el("span", { class: "name" }, ` · ${current.image_name}`) : null),
        el("p", { class: "meta" }, `${when(current.created_at)} · ${current.model_version} · ${current.source}`)),
      feedbackControls(current, render));
  };
  render(record);
  return item;
}

async function load(more = false) {
  const list = $("#history-list");
  $("#history-error").textContent = "";
  if (!more) {
    cursor = null;
    list.replaceChildren();
  }
  const query = {
    limit: 20,
    cursor,
    label: $("#history-label").value,
    has_feedback: $("#history-feedback").checked ? "true" : null,
    wrong: $("#history-wrong").checked ? "true" : null,
    // operators list everyone's records by default: the history is the caller's own
    owner: caller.role === "operator" ? caller.keyId : null,
  };
  try {
    const page = await call("GET", "/predictions", { query });
    for (const record of page.items) list.append(row(record));
    if (!list.children.length) list.append(el("li", { class: "empty" }, "No predictions yet."));
    cursor = page.next_cursor;
    $("#history-more").hidden = !cursor;
  } catch (error) {
    $("#history-error").textContent = inWords(error);
  }
}

export function setUp() {
  const select = $("#history-label");
  for (const label of LIMITS.labels) select.append(el("option", { value: label }, label));
  $("#history-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  $("#history-more").addEventListener("click", () => load(true));
}

export const show = () => load();
