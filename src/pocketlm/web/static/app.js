// Start-up: labels in the browser's language, what the server offers (GET /ready for the default model and
// its context, GET /v1/models for every model and the picker, GET /openapi.json for which tabs have their
// endpoints), the tabs, the API-key prompt.

import { apiKey, getJSON, onKeyNeeded } from "./api.js";
import { createChat } from "./chat.js";
import { createCompletion } from "./complete.js";
import { $ } from "./dom.js";
import { applyLabels, t } from "./i18n.js";
import { installPicker, refreshModels } from "./models.js";
import { renderParams } from "./params.js";
import { installTokenPopover } from "./tokens.js";

// Tabs shown only when the server has their endpoint; their code loads when first opened.
const LATER = {
  compare: "./compare.js", inspect: "./inspect.js", translate: "./translate.js", speak: "./speak.js", describe: "./describe.js",
  talk: "./talk.js",
};

async function main() {
  applyLabels();
  if (matchMedia("(max-width: 760px)").matches) $("#sidebar").open = $("#settings").open = false; // phone: folded
  installTokenPopover();
  onKeyNeeded(askKey);
  $("#key-button").addEventListener("click", () => askKey(""));

  const server = await getJSON("/ready").catch((err) => ({ error: err.message }));
  await refreshModels();
  installPicker($("#model-picker"), $("#model"));
  if (server.error) $("#model").textContent = t("server_down", { why: server.error });
  renderParams($("#params"));
  createChat($("#panel-chat"), server);
  createCompletion($("#panel-completion"), server);
  await showTaskTabs();
  setUpTabs(server);
  document.body.dataset.ready = "true"; // for tests and scripts: start-up is over
}

function setUpTabs(server) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const opened = new Set();
  const select = (tab, focus = false) => {
    const name = tab.dataset.tab;
    if (LATER[name] && !opened.has(name)) { // a task tab loads its code and data when first opened
      opened.add(name);
      import(LATER[name]).then((module) => module.create($(`#panel-${name}`), server));
    }
    for (const other of tabs) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      $(`#panel-${other.dataset.tab}`).hidden = !on;
    }
    document.body.dataset.activeTab = tab.dataset.tab;
    history.replaceState(null, "", `#${tab.dataset.tab}`);
    if (focus) tab.focus();
  };
  tabs.forEach((tab) => tab.addEventListener("click", () => select(tab)));
  $("#tabs").addEventListener("keydown", (e) => {
    const shown = tabs.filter((x) => !x.hidden);
    const at = shown.indexOf(document.activeElement);
    if (at < 0) return;
    if (e.key === "ArrowRight") select(shown[(at + 1) % shown.length], true);
    if (e.key === "ArrowLeft") select(shown[(at - 1 + shown.length) % shown.length], true);
  });
  const wanted = tabs.find((x) => !x.hidden && `#${x.dataset.tab}` === location.hash);
  select(wanted || tabs[0]);
}

// The API-key dialog; resolves true when the user saved a key (then the request is tried again).
// Requests that meet a 401 while it is open (the tabs load at once) wait for the same answer.
let asking = null;
// A task tab shows when the server has its endpoint. With API keys the document needs the key too: it is
// read without asking (a page should not open on a key prompt) and read again once a key is saved.
async function showTaskTabs() {
  const paths = await getJSON("/openapi.json", { ask: false }).then((spec) => Object.keys(spec.paths || {})).catch(() => []);
  for (const tab of document.querySelectorAll("[data-needs]")) tab.hidden = !paths.includes(tab.dataset.needs);
}

function askKey(reason) {
  const dialog = $("#key-dialog");
  $("#key-reason").textContent = reason ? `${t("api_key_prompt")} ${reason}` : t("api_key_prompt");
  if (asking) return asking;
  $("#key-input").value = apiKey.get();
  dialog.returnValue = ""; // Escape closes with the previous value otherwise
  dialog.showModal();
  asking = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const saved = dialog.returnValue === "save";
      if (saved) apiKey.set($("#key-input").value.trim());
      if (saved) showTaskTabs();
      if (saved) refreshModels(); // the list needs the key too
      asking = null;
      resolve(saved && Boolean(apiKey.get()));
    }, { once: true });
  });
  return asking;
}

main();
