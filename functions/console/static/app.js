// The console's entry point: the key form, the caller's role (GET /whoami), and the panels, of
// which a key sees only those it may use.
import { call, caller, forgetKey, inWords, isRemembered, saveKey, storedKey } from "./api.js";
import { $, $$ } from "./dom.js";
import * as classify from "./classify.js";
import * as historyPanel from "./history.js";
import * as training from "./training.js";
import * as retrain from "./retrain.js";
import * as models from "./models.js";
import * as monitoring from "./monitoring.js";

const PANELS = { classify, history: historyPanel, training, retrain, models, monitoring };

function allowed(node) {
  return node.dataset.needs !== "operator" || caller.role === "operator";
}

function showPanel(name) {
  for (const tab of $$(".tab")) {
    const selected = tab.dataset.panel === name;
    tab.setAttribute("aria-current", selected ? "page" : "false");
    $(`#panel-${tab.dataset.panel}`).hidden = !selected;
  }
  PANELS[name].show?.();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function applyRole() {
  const signedIn = Boolean(caller.role);
  $("nav.tabs").hidden = !signedIn;
  $("#forget").hidden = !signedIn;
  for (const node of $$("[data-needs]")) node.hidden = !signedIn || !allowed(node);
  if (!signedIn) {
    for (const panel of $$(".panel")) panel.hidden = true;
    return;
  }
  const wanted = location.hash.slice(1);
  const tab = $$(".tab").find((t) => t.dataset.panel === wanted && allowed(t)) || $(".tab");
  showPanel(tab.dataset.panel);
}

async function signIn() {
  const who = $("#who");
  if (!storedKey()) {
    caller.role = null;
    applyRole();
    return;
  }
  who.textContent = "Checking the key…";
  try {
    const answer = await call("GET", "/whoami");
    caller.role = answer.role;
    caller.keyId = answer.key_id;
    who.textContent = answer.role === "operator"
      ? `Operator key ${answer.key_id}: every panel.`
      : `Client key ${answer.key_id}: classify, your history and the models.`;
  } catch (error) {
    caller.role = null;
    who.textContent = inWords(error);
  }
  applyRole();
}

function setUp() {
  for (const panel of Object.values(PANELS)) panel.setUp();
  $("#api-key").value = storedKey();
  $("#remember").checked = isRemembered();
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveKey($("#api-key").value.trim(), $("#remember").checked);
    signIn();
  });
  $("#forget").addEventListener("click", () => {
    forgetKey();
    $("#api-key").value = "";
    $("#remember").checked = false;
    $("#who").textContent = "Key forgotten on this tab and this device.";
    applyRole();
  });
  for (const tab of $$(".tab")) tab.addEventListener("click", () => showPanel(tab.dataset.panel));
  // a link to a panel (#retrain): that panel if this key may use it, else the first one
  window.addEventListener("hashchange", () => caller.role && applyRole());
  signIn();
}

setUp();
