// The models the server serves (GET /v1/models, which says which are loaded now) and the one this page talks
// to: the picker in the header. Every generation request names the chosen model; a model that is not loaded
// loads on its first request (the answer then takes a little longer), so the picker says which are.

import { getJSON } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

const STORE = "pocketlm.model";
let models = []; // the text-generation models' cards, the default first
const listeners = [];

// Read the list again (states change as models load and unload); the picker follows.
export async function refreshModels() {
  const list = await getJSON("/v1/models", { ask: false }).catch(() => null);
  if (!list) return models;
  const text = list.data.filter((m) => m.state); // the tasks' models (translation, speech) have no state
  models = [...text.filter((m) => m.default), ...text.filter((m) => !m.default)];
  listeners.forEach((fn) => fn());
  return models;
}

export function servedModels() {
  return models;
}

// The chosen model's card: the one picked (kept across reloads) if the server still serves it, else the default.
export function currentModel() {
  return models.find((m) => m.id === localStorage.getItem(STORE)) || models[0] || null;
}

export function modelCard(id) {
  return models.find((m) => m.id === id) || null;
}

export function onModelsChange(fn) {
  listeners.push(fn);
}

// "smollm2 · loaded": what an option says of a model.
export function modelLabel(card) {
  return `${card.id} · ${card.state === "loaded" ? t("loaded") : card.state === "unloaded" ? t("not_loaded") : t(card.state)}`;
}

// Fill a <select> with the served models and keep its labels current; `chosen` picks the selected one.
export function fillModelSelect(select, chosen) {
  const render = () => {
    const value = select.value || chosen()?.id;
    select.replaceChildren(...models.map((m) => h("option", { value: m.id }, modelLabel(m))));
    if (value && models.some((m) => m.id === value)) select.value = value;
  };
  onModelsChange(render);
  render();
}

// The header's picker: the choice is remembered, and announced to whoever listens (the context bar).
export function installPicker(select, badge) {
  fillModelSelect(select, currentModel);
  const describe = () => {
    const card = currentModel();
    badge.textContent = card ? `${card.n_ctx ? `n_ctx ${card.n_ctx}` : ""}${card.ram_estimate ? ` · ~${Math.round(card.ram_estimate / 1e6)} MB` : ""}` : "";
  };
  select.addEventListener("change", () => {
    localStorage.setItem(STORE, select.value);
    listeners.forEach((fn) => fn());
  });
  select.addEventListener("focus", refreshModels); // states as they are now, when the user looks
  onModelsChange(describe);
  describe();
}
