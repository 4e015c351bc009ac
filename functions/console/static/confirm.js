// Confirmation in the page (a modal <dialog>: focus stays inside, Escape cancels), not
// window.confirm, so that no browser dialog ever opens.
import { $ } from "./dom.js";

/** Resolves true when confirmed; with ``extra``, only when its box was ticked too. */
export function confirmAction({ title, text, ok = "Confirm", extra = null }) {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  const force = $("#confirm-force");
  force.checked = false;
  $("#confirm-extra").hidden = !extra;
  $("#confirm-extra-text").textContent = extra || "";
  $("#confirm-ok").disabled = Boolean(extra);
  force.onchange = () => { $("#confirm-ok").disabled = extra ? !force.checked : false; };
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" && (!extra || force.checked)), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}
