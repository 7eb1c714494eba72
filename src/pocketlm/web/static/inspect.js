// The Inspect tab: what the model sees (POST /v1/inspect/tokens), where it looks (/v1/inspect/attention)
// and how it picks the next token (/v1/inspect/next), which re-asks as the sampling sliders move.
// Shown only when the server has these routes.

import { postJSON } from "./api.js";
import { $, h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { values } from "./params.js";
import { visible } from "./tokens.js";

export function create(root, server) {
  const text = h("textarea", { id: "inspect-text", rows: 2, placeholder: t("inspect_placeholder"), "aria-label": t("inspect_placeholder") });
  text.value = "I read a good novel.";
  const tokenizers = [server.model, "gpt2", "bert"].map((name, i) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", value: name, checked: i === 0 }), h("code", {}, name)));
  const tokensOut = h("div", { id: "inspect-tokens", class: "result", "aria-live": "polite" });
  const layer = h("input", { type: "number", id: "inspect-layer", min: 0, value: 0, "aria-label": t("layer") });
  const head = h("select", { id: "inspect-head", "aria-label": t("head") });
  const attentionOut = h("div", { id: "inspect-attention", class: "result" });
  const nextOut = h("div", { id: "inspect-next", class: "result", "aria-live": "polite" });
  const knobs = nextKnobs(() => runNext());

  root.append(h("div", { class: "task" },
    text,
    h("h2", {}, t("tokens")), h("div", { class: "row" }, ...tokenizers, h("button", { type: "button", id: "inspect-tokens-run", onclick: runTokens }, t("run"))), tokensOut,
    h("h2", {}, t("attention")), h("div", { class: "row" }, h("label", {}, `${t("layer")} `, layer), h("label", {}, `${t("head")} `, head),
      h("button", { type: "button", id: "inspect-attention-run", onclick: runAttention }, t("run"))), attentionOut,
    h("h2", {}, t("next_token")), h("div", { class: "row" }, ...knobs.rows, h("button", { type: "button", id: "inspect-next-run", onclick: () => runNext() }, t("run"))), nextOut));

  async function guarded(out, work) {
    out.classList.add("busy");
    try {
      await work();
    } catch (err) {
      if (err.name !== "AbortError") out.replaceChildren(h("div", { class: "error", role: "alert" }, err.message));
    } finally {
      out.classList.remove("busy");
    }
  }

  function runTokens() {
    const names = tokenizers.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value);
    return guarded(tokensOut, async () => {
      const answer = await postJSON("/v1/inspect/tokens", { text: text.value, tokenizers: names });
      clear(tokensOut);
      for (const result of answer.results) {
        tokensOut.append(h("div", {}, h("strong", {}, result.tokenizer), ` · ${result.kind} · ${result.count} ${t("tokens")}`),
          h("div", { class: "pieces" }, ...result.tokens.map((tok, i) => h("span", {
            class: "piece", style: `background:hsla(${(i * 47) % 360}, 70%, 60%, 0.3)`,
            title: `id ${tok.id} · ${tok.piece} · bytes ${tok.bytes}${tok.special ? " · special" : ""}${tok.partial ? " · partial" : ""}`,
          }, tok.special ? tok.piece : tok.partial ? `‹${tok.bytes}›` : visible(tok.text), h("small", {}, tok.id)))));
      }
    });
  }

  let attention = null;
  function runAttention() {
    return guarded(attentionOut, async () => {
      attention = await postJSON("/v1/inspect/attention", { text: text.value, layers: [Number(layer.value)] });
      const chosen = head.value;
      head.replaceChildren(...attention.heads.map((k) => h("option", { value: k }, k)));
      head.value = chosen !== "" && attention.heads.includes(Number(chosen)) ? chosen : String(attention.heads[0]);
      drawAttention();
    });
  }
  head.addEventListener("change", () => attention && drawAttention());

  function drawAttention() {
    const k = attention.heads.indexOf(Number(head.value));
    attentionOut.replaceChildren(heatmap(attention.tokens, attention.weights[0][Math.max(0, k)]),
      h("div", { class: "stats" }, `${attention.model} · ${t("layer")} ${attention.layers[0]} · ${t("head")} ${head.value}`));
  }

  let pending = null;
  function runNext(delay = 0) {
    clearTimeout(runNext.timer);
    runNext.timer = setTimeout(() => guarded(nextOut, async () => {
      pending?.abort();
      pending = new AbortController();
      const answer = await postJSON("/v1/inspect/next", { prompt: text.value, ...knobs.values(), top: 10, lens_top: 1 },
        { signal: pending.signal });
      renderNext(nextOut, answer);
    }), delay);
  }
  knobs.onMove(() => runNext(200));
}

// temperature, top_k, top_p, min_p for the next-token view, starting from the sampling panel's values.
function nextKnobs(changed) {
  const p = values();
  const specs = [["temperature", 0, 2, 0.05], ["top_k", 0, 100, 1], ["top_p", 0.01, 1, 0.01], ["min_p", 0, 0.5, 0.01]];
  const inputs = {};
  const listeners = [];
  const rows = specs.map(([name, min, max, step]) => {
    const out = h("output", {}, p[name]);
    inputs[name] = h("input", { type: "range", id: `inspect-${name}`, min, max, step, value: p[name], "aria-label": name,
      oninput: (e) => { out.textContent = e.target.value; listeners.forEach((fn) => fn()); } });
    return h("label", { class: "param" }, h("span", { class: "param-head" }, h("code", {}, name), out), inputs[name]);
  });
  return {
    rows,
    values: () => Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, Number(el.value)])),
    onMove: (fn) => listeners.push(fn),
  };
}

function renderNext(out, answer) {
  const bars = (list) => h("div", { class: "bars" }, ...list.flatMap((c) => [
    h("code", {}, visible(c.text)), h("div", { class: "bar", style: `width:${Math.max(0.5, c.probability * 100)}%` }),
    h("span", {}, `${(c.probability * 100).toFixed(1)}%`)]));
  out.replaceChildren(
    h("div", { class: "columns" },
      h("div", {}, h("h4", {}, t("before")), bars(answer.before)),
      h("div", { id: "inspect-after" }, h("h4", {}, `${t("after")} · ${answer.kept} ${t("kept")}`), bars(answer.after))),
    h("h4", {}, t("logit_lens")),
    h("div", { class: "pieces" }, ...answer.lens.map((layer) => h("span", { class: "piece", title: `${t("layer")} ${layer.layer}` },
      visible(layer.top[0]?.text ?? ""), h("small", {}, layer.layer)))));
}

// A query x key heatmap on a canvas, token labels drawn as canvas text (never markup).
function heatmap(tokens, rows) {
  const n = tokens.length;
  const cell = Math.max(8, Math.min(28, Math.floor(520 / n)));
  const pad = 90;
  const canvas = h("canvas", { width: pad + n * cell, height: pad + n * cell, role: "img", "aria-label": "attention heatmap" });
  const g = canvas.getContext("2d");
  g.font = `${Math.min(12, cell)}px system-ui, sans-serif`;
  g.fillStyle = getComputedStyle(document.body).color;
  g.textAlign = "right";
  g.textBaseline = "middle";
  tokens.forEach((tok, i) => g.fillText(visible(tok).slice(0, 12), pad - 4, pad + i * cell + cell / 2));
  tokens.forEach((tok, j) => {
    g.save();
    g.translate(pad + j * cell + cell / 2, pad - 4);
    g.rotate(-Math.PI / 2);
    g.textAlign = "left";
    g.fillText(visible(tok).slice(0, 12), 0, 0);
    g.restore();
  });
  rows.forEach((row, i) => row.forEach((w, j) => {
    g.fillStyle = `rgba(37, 99, 235, ${Math.sqrt(w)})`; // sqrt: small weights stay visible
    g.fillRect(pad + j * cell, pad + i * cell, cell - 1, cell - 1);
  }));
  return canvas;
}
