// The Completion tab: the model continues a text (POST /v1/completions, streamed), for base models
// and the seeds' /generate habit of answering with the prompt repeated in front (echo).

import { $, h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { currentModel, refreshModels } from "./models.js";
import { emptyVariants, renderBody, renderError, renderStats, streamInto, viewPicker } from "./output.js";
import { samplingFields, values } from "./params.js";
import { fromCompletion } from "./tokens.js";

const STORE = "pocketlm.completion";

export function createCompletion(root, server) {
  const prompt = $("#prompt", root);
  const echo = $("#echo", root);
  const out = $("#completion-out", root);
  const go = $("#generate", root);
  const stopButton = $("#stop-completion", root);
  let controller = null;
  let view = null;
  let result = [];

  const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
  prompt.value = saved.prompt ?? "";
  echo.checked = Boolean(saved.echo);
  const remember = () => localStorage.setItem(STORE, JSON.stringify({ prompt: prompt.value, echo: echo.checked }));
  prompt.addEventListener("input", remember);
  echo.addEventListener("change", remember);

  function render() {
    clear(out);
    const hasTokens = result.some((v) => v.tokens?.length);
    const current = view || (hasTokens ? "tokens" : "text");
    if (result.length) out.append(h("div", { class: "actions" }, viewPicker(current, hasTokens, (v) => { view = v; render(); })));
    for (const v of result) {
      out.append(h("div", { class: "msg assistant" }, h("div", { class: "body" }, renderBody(v, current)),
        renderError(v.error), renderStats(v.stats, v.finish_reason)));
    }
    const stats = result[0]?.stats;
    if (stats?.prompt_tokens != null) {
      const used = stats.prompt_tokens + Math.round(stats.completion_tokens / result.length);
      const n_ctx = currentModel()?.n_ctx ?? server.n_ctx;
      out.append(h("div", { class: "stats" }, `${t("context")}: ${used} ${t("of")} ${n_ctx ?? "?"}`));
    }
  }

  async function generate() {
    if (controller || !prompt.value) return;
    const p = values();
    const body = {
      model: currentModel()?.id, prompt: prompt.value, echo: echo.checked, max_tokens: p.max_new_tokens, ...samplingFields(p),
      ...(p.logprobs ? { logprobs: p.top_logprobs } : {}),
    };
    result = emptyVariants(p.n, p.logprobs);
    controller = new AbortController();
    setBusy(true);
    render();
    await streamInto("/v1/completions", body, result, controller, {
      read: (choice) => ({ text: choice.text, tokens: choice.logprobs && fromCompletion(choice.logprobs) }),
      redraw: render, echo: body.echo,
    });
    controller = null;
    setBusy(false);
    render();
    refreshModels();
  }

  function setBusy(busy) {
    go.hidden = busy;
    stopButton.hidden = !busy;
  }

  $("#completion-form", root).addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); generate(); }
  });
  root.addEventListener("keydown", (e) => e.key === "Escape" && controller?.abort());
  stopButton.addEventListener("click", () => controller?.abort());
}
