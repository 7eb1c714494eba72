// One generated answer on screen, the same way in Chat and Completion: its text in one of three views
// (plain text, Markdown, tokens coloured by probability), its statistics, and the server's error if any.

import { call, events } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { renderMarkdown } from "./markdown.js";
import { renderTokens } from "./tokens.js";

export const VIEWS = ["text", "markdown", "tokens"];

export function renderBody(variant, view, prefix = "") {
  if (view === "tokens" && variant.tokens?.length) {
    const tokens = renderTokens(variant.tokens);
    if (prefix) tokens.prepend(h("span", { class: "echo" }, prefix));
    return tokens;
  }
  if (view === "markdown") return h("div", { class: "markdown" }, renderMarkdown(prefix + variant.content));
  return h("div", { class: "plain" }, prefix ? h("span", { class: "echo" }, prefix) : null, variant.content);
}

export function viewPicker(current, hasTokens, choose) {
  const views = VIEWS.filter((v) => v !== "tokens" || hasTokens);
  return h("div", { class: "views", role: "group" }, ...views.map((v) =>
    h("button", { type: "button", class: "quiet", "aria-pressed": String(v === current), dataset: { view: v },
      onclick: () => choose(v) }, t(`view_${v}`))));
}

// Stream an OpenAI request (stream: true) into `variants`, one per choice. read(choice) gives the text and
// tokens a chunk adds; redraw() runs at most once a frame. With `echo`, each choice's first text is the
// prompt sent back, not a generated token. Errors land on the first variant; an abort (Stop) is no error.
export async function streamInto(path, body, variants, controller, { read, redraw, echo = false }) {
  const meter = new Meter();
  let usage = null;
  let model = body.model || null;
  let frame = 0;
  try {
    const response = await call(path, { method: "POST", json: body, signal: controller.signal });
    for await (const chunk of events(response)) {
      if (chunk.usage) usage = chunk.usage;
      if (chunk.model) model = chunk.model; // the model that answered
      for (const choice of chunk.choices || []) {
        const v = variants[choice.index];
        if (!v) continue;
        const { text, tokens, calls } = read(choice);
        if (calls?.length) addCalls(v, calls);
        if (text) {
          v.content += text;
          if (echo && !v.echoed) v.echoed = true;
          else meter.tick();
        }
        if (tokens?.length) v.tokens.push(...tokens);
        if (choice.finish_reason) v.finish_reason = choice.finish_reason;
      }
      if (!frame) frame = requestAnimationFrame(() => { frame = 0; redraw(); });
    }
  } catch (err) {
    if (err.name !== "AbortError") variants[0].error = err.message || String(err);
  } finally {
    cancelAnimationFrame(frame);
    const stats = { ...meter.finish(usage, controller.signal.aborted), n: variants.length, model };
    variants.forEach((v) => (v.stats = stats));
  }
}

// Tool-call deltas into a variant's calls: id, type and name come first, the arguments in pieces after.
function addCalls(variant, deltas) {
  variant.tool_calls ||= [];
  for (const d of deltas) {
    const call = (variant.tool_calls[d.index] ||= { id: "", type: "function", function: { name: "", arguments: "" } });
    if (d.id) call.id = d.id;
    if (d.function?.name) call.function.name = d.function.name;
    call.function.arguments += d.function?.arguments || "";
  }
}

// A variant's tool calls as calls: each function's name and the arguments it was called with.
export function renderCalls(calls) {
  if (!calls?.length) return null;
  return h("div", { class: "calls" }, h("span", { class: "role" }, t("tool_call")),
    ...calls.map((c) => h("div", { class: "call" }, h("code", { class: "name" }, c.function.name),
      h("code", { class: "arguments" }, c.function.arguments))));
}

export function emptyVariants(n, withTokens) {
  return Array.from({ length: Math.max(1, n || 1) }, () => ({ content: "", tokens: withTokens ? [] : undefined }));
}

// A timer and counters for one streamed request; finish() turns them into the numbers shown.
export class Meter {
  constructor() {
    this.started = performance.now();
    this.first = null;
    this.chunks = 0;
  }
  tick() {
    this.first ??= performance.now();
    this.chunks++;
  }
  finish(usage, stopped) {
    const end = performance.now();
    const decode = this.first === null ? 0 : (end - this.first) / 1000;
    const completion = usage?.completion_tokens ?? this.chunks; // no usage after Stop: one chunk is one token
    return {
      prompt_tokens: usage?.prompt_tokens ?? null, completion_tokens: completion, exact: Boolean(usage),
      ttft_ms: this.first === null ? null : Math.round(this.first - this.started),
      tokens_per_s: decode > 0 && completion > 1 ? (completion - 1) / decode : null, stopped: Boolean(stopped),
    };
  }
}

export function renderStats(stats, finish) {
  if (!stats) return null;
  const parts = [];
  if (stats.model) parts.push(stats.model);
  if (stats.tokens_per_s) parts.push(`${stats.tokens_per_s.toFixed(1)} ${t("tokens_per_s")}`);
  if (stats.prompt_tokens !== null) parts.push(`${t("prompt_tokens")} ${stats.prompt_tokens}`);
  parts.push(`${t("completion_tokens")} ${stats.exact ? "" : "~"}${stats.completion_tokens}`);
  if (stats.ttft_ms !== null) parts.push(`${t("first_token")} ${stats.ttft_ms} ms`);
  if (stats.stopped) parts.push(t("stopped"));
  else if (finish) parts.push(t(`finish_${finish}`));
  return h("div", { class: "stats" }, parts.join(" · "));
}

export function renderError(message) {
  return message ? h("div", { class: "error", role: "alert" }, message) : null;
}
