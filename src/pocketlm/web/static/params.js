// The sampling parameters, with the API's names and ranges (pocketlm.engine.params checks the same
// bounds on the server, and its error, naming the parameter, is what the page shows if one is off).
// Sliders cover the useful part of a range; the number box beside each takes the whole range.
// Two boxes shape the answer itself: a JSON schema (response_format json_schema: the answer is JSON that
// follows it) and, for Chat, tools (OpenAI's list of functions the model may call).

import { h, clear } from "./dom.js";
import { lang, t } from "./i18n.js";

const STORE = "pocketlm.params";

export const PARAMS = [
  { name: "max_new_tokens", min: 1, max: 2048, step: 1, value: 256, slider: [1, 1024],
    help: { en: "Most tokens to generate (max_completion_tokens / max_tokens in OpenAI's spelling).", pt: "Máximo de tokens a gerar (max_completion_tokens / max_tokens no OpenAI)." } },
  { name: "temperature", min: 0, max: 100, step: 0.05, value: 0.7, slider: [0, 2],
    help: { en: "0 always takes the most likely token (greedy); higher flattens the distribution.", pt: "0 sempre pega o token mais provável; mais alto achata a distribuição." } },
  { name: "top_k", min: 0, max: 100000, step: 1, value: 0, slider: [0, 100],
    help: { en: "Keep only the k most likely tokens (0: off).", pt: "Mantém só os k tokens mais prováveis (0: desligado)." } },
  { name: "top_p", min: 0.01, max: 1, step: 0.01, value: 1, slider: [0.01, 1],
    help: { en: "Keep the most likely tokens whose probabilities add up to p (1: off).", pt: "Mantém os tokens mais prováveis cuja soma chega a p (1: desligado)." } },
  { name: "min_p", min: 0, max: 1, step: 0.01, value: 0, slider: [0, 0.5],
    help: { en: "Drop tokens less likely than min_p × the top token's probability.", pt: "Descarta tokens menos prováveis que min_p × a probabilidade do primeiro." } },
  { name: "repetition_penalty", min: 0.01, max: 10, step: 0.01, value: 1, slider: [0.5, 2],
    help: { en: "Above 1 makes tokens already seen (prompt and answer) less likely.", pt: "Acima de 1 torna menos prováveis os tokens já vistos." } },
  { name: "presence_penalty", min: -2, max: 2, step: 0.05, value: 0, slider: [-2, 2],
    help: { en: "Subtracted once from every token the answer already used.", pt: "Subtraído uma vez de cada token já usado na resposta." } },
  { name: "frequency_penalty", min: -2, max: 2, step: 0.05, value: 0, slider: [-2, 2],
    help: { en: "Subtracted for each time the answer used a token.", pt: "Subtraído a cada vez que a resposta usou o token." } },
  { name: "n", min: 1, max: 8, step: 1, value: 1, slider: [1, 8],
    help: { en: "Several answers to one prompt, sharing its prefill.", pt: "Várias respostas para um prompt, com o prefill compartilhado." } },
  { name: "seed", min: 0, step: 1, value: "", optional: true,
    help: { en: "Same seed, same text. Empty: a new draw every time.", pt: "Mesma seed, mesmo texto. Vazio: sorteio novo a cada vez." } },
];

const DEFAULTS = {
  ...Object.fromEntries(PARAMS.map((p) => [p.name, p.value])), stop: "", logprobs: false, top_logprobs: 5,
  json_schema: "", tools: "", tool_choice: "auto",
};

let state = load();
const listeners = [];

function load() {
  try {
    return { ...DEFAULTS, ...JSON.parse(localStorage.getItem(STORE) || "{}") };
  } catch {
    return { ...DEFAULTS };
  }
}

function save() {
  localStorage.setItem(STORE, JSON.stringify(state));
  listeners.forEach((fn) => fn(values()));
}

export function onChange(fn) {
  listeners.push(fn);
}

// What a request sends: numbers as numbers, an empty seed and an empty stop list left out.
export function values() {
  const out = {};
  for (const p of PARAMS) {
    const v = state[p.name];
    if (p.optional && (v === "" || v === null)) continue;
    out[p.name] = Number(v);
  }
  const stop = String(state.stop).split("\n").filter((s) => s.length);
  if (stop.length) out.stop = stop;
  out.logprobs = Boolean(state.logprobs);
  out.top_logprobs = Number(state.top_logprobs);
  const schema = parsed(state.json_schema);
  if (schema !== undefined) out.response_format = { type: "json_schema", json_schema: { name: "page", schema } };
  const tools = parsed(state.tools);
  if (tools !== undefined) Object.assign(out, { tools, tool_choice: state.tool_choice });
  return out;
}

// A box's JSON, or undefined when it is empty or does not parse (the box says so; the server checks the rest).
function parsed(text) {
  if (!String(text || "").trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// The fields /v1/chat/completions and /v1/completions share (the token limit and logprobs differ).
export function samplingFields(p) {
  const names = ["temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "n", "seed", "stop", "response_format"];
  return { stream: true, stream_options: { include_usage: true }, ...Object.fromEntries(names.map((k) => [k, p[k]])) };
}

export function set(name, value) {
  state[name] = value;
  save();
}

export function renderParams(root) {
  clear(root);
  for (const p of PARAMS) root.append(row(p));
  root.append(
    h("label", { class: "param", for: "param-stop" },
      h("span", { class: "param-head" }, h("code", {}, "stop")),
      h("textarea", { id: "param-stop", rows: 2, value: state.stop, title: t("stop_help"), placeholder: t("stop_help"),
        oninput: (e) => set("stop", e.target.value) })),
    h("label", { class: "check", title: t("probabilities_help") },
      h("input", { type: "checkbox", id: "param-logprobs", checked: Boolean(state.logprobs), onchange: (e) => set("logprobs", e.target.checked) }),
      h("span", {}, t("probabilities"))),
    row({ name: "top_logprobs", min: 0, max: 20, step: 1, value: 5, slider: [0, 20],
      help: { en: "Alternatives shown per token (with logprobs).", pt: "Alternativas por token (com logprobs)." } }),
    jsonBox("json_schema", t("json_schema_help"), '{"type": "object", "properties": {"name": {"type": "string"}}}'),
    jsonBox("tools", t("tools_help"), '[{"type": "function", "function": {"name": "get_weather", "parameters": {...}}}]'),
    h("label", { class: "param-head", for: "param-tool_choice", title: t("tool_choice_help") }, h("code", {}, "tool_choice"),
      h("select", { id: "param-tool_choice", onchange: (e) => set("tool_choice", e.target.value) },
        ...["auto", "required", "none"].map((c) => h("option", { value: c, selected: state.tool_choice === c }, c)))),
    h("button", { type: "button", class: "quiet", onclick: () => { state = { ...DEFAULTS }; save(); renderParams(root); } }, t("reset")),
  );
}

// A JSON box: what it holds is sent when it parses; while it does not, the box is marked and says why.
function jsonBox(name, help, example) {
  const id = `param-${name}`;
  const note = h("small", { class: "box-error", role: "status" });
  const box = h("textarea", { id, rows: 3, spellcheck: "false", value: state[name], title: help, placeholder: example,
    oninput: (e) => { set(name, e.target.value); check(); } });
  function check() {
    let why = "";
    try {
      if (box.value.trim()) JSON.parse(box.value);
    } catch (err) {
      why = `${t("not_json")}: ${err.message}`;
    }
    box.classList.toggle("invalid", Boolean(why));
    note.textContent = why;
  }
  check();
  return h("label", { class: "param", for: id }, h("span", { class: "param-head" }, h("code", {}, name)), box, note, h("small", {}, help));
}

function row(p) {
  const id = `param-${p.name}`;
  const number = h("input", { type: "number", id, min: p.min, max: p.max, step: p.step, value: state[p.name],
    placeholder: p.optional ? t("random_seed") : undefined, inputmode: "decimal" });
  const slider = p.slider && h("input", { type: "range", min: p.slider[0], max: p.slider[1], step: p.step, value: state[p.name],
    tabindex: -1, "aria-hidden": "true" });
  number.addEventListener("input", () => {
    if (slider) slider.value = number.value;
    set(p.name, number.value);
  });
  slider?.addEventListener("input", () => {
    number.value = slider.value;
    set(p.name, slider.value);
  });
  return h("div", { class: "param", title: p.help[lang] },
    h("label", { class: "param-head", for: id }, h("code", {}, p.name), number),
    slider,
    h("small", {}, p.help[lang]));
}
