// The Compare tab: one prompt, two models (a fine-tune and its base, two sizes, two quantizations), both answers
// streamed at once, side by side, with the same sampling parameters. Each side is its own request to
// /v1/chat/completions (or /v1/completions for a plain continuation); a model that is not loaded loads first.

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { fillModelSelect, refreshModels, servedModels } from "./models.js";
import { emptyVariants, renderBody, renderError, renderStats, streamInto } from "./output.js";
import { samplingFields, values } from "./params.js";

const STORE = "pocketlm.compare";

export function create(root) {
  const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
  const models = servedModels();
  const sides = ["a", "b"].map((name, i) => {
    const select = h("select", { id: `compare-${name}`, "aria-label": `${t("model")} ${name.toUpperCase()}` });
    const fallback = models[Math.min(i, models.length - 1)];
    fillModelSelect(select, () => models.find((m) => m.id === saved[name]) || fallback);
    return { name, select, out: h("div", { id: `compare-out-${name}`, class: "result", "aria-live": "polite" }), variant: null };
  });
  const prompt = h("textarea", { id: "compare-prompt", rows: 3, placeholder: t("compare_placeholder"), "aria-label": t("compare_placeholder") });
  prompt.value = saved.prompt ?? "";
  const plain = h("input", { type: "checkbox", id: "compare-plain", checked: Boolean(saved.plain) });
  const run = h("button", { type: "submit", id: "compare-run" }, t("compare_button"));
  const stop = h("button", { type: "button", id: "compare-stop", class: "danger", hidden: true }, t("stop"));
  let controller = null;

  const remember = () => localStorage.setItem(STORE, JSON.stringify({
    prompt: prompt.value, plain: plain.checked, a: sides[0].select.value, b: sides[1].select.value,
  }));
  [prompt, plain, ...sides.map((s) => s.select)].forEach((el) => el.addEventListener("change", remember));

  const form = h("form", { class: "task", id: "compare-form" },
    h("div", { class: "row" }, ...sides.map((s) => h("label", {}, `${s.name.toUpperCase()} `, s.select))),
    prompt,
    h("div", { class: "row" },
      h("label", { class: "check" }, plain, h("span", {}, t("compare_plain"))),
      run, stop),
    h("div", { class: "columns" }, ...sides.map((s) => h("section", { "aria-labelledby": `compare-title-${s.name}` },
      h("h2", { id: `compare-title-${s.name}` }, s.name.toUpperCase()), s.out))));
  root.append(form);

  function render(side) {
    const title = root.querySelector(`#compare-title-${side.name}`);
    title.textContent = `${side.name.toUpperCase()} · ${side.select.value}`;
    const v = side.variant;
    side.out.replaceChildren(...(v ? [h("div", { class: "body" }, renderBody(v, "text")), renderError(v.error), renderStats(v.stats, v.finish_reason)] : []).filter(Boolean));
    side.out.classList.toggle("streaming", Boolean(controller && v && !v.stats));
  }

  async function compare() {
    if (controller || !prompt.value.trim()) return;
    remember();
    const p = values();
    const shared = plain.checked
      ? { prompt: prompt.value, max_tokens: p.max_new_tokens }
      : { messages: [{ role: "user", content: prompt.value }], max_completion_tokens: p.max_new_tokens };
    const path = plain.checked ? "/v1/completions" : "/v1/chat/completions";
    const read = plain.checked ? (c) => ({ text: c.text }) : (c) => ({ text: c.delta?.content });
    controller = new AbortController();
    run.hidden = true;
    stop.hidden = false;
    await Promise.all(sides.map((side) => {
      side.variant = emptyVariants(1, false)[0];
      render(side);
      const body = { ...samplingFields(p), n: 1, ...shared, model: side.select.value };
      return streamInto(path, body, [side.variant], controller, { read, redraw: () => render(side) });
    }));
    controller = null;
    run.hidden = false;
    stop.hidden = true;
    sides.forEach(render);
    refreshModels();
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); compare(); });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); compare(); }
  });
  stop.addEventListener("click", () => controller?.abort());
  root.addEventListener("keydown", (e) => e.key === "Escape" && controller?.abort());
  sides.forEach(render);
}
