// The Translate tab: LibreTranslate's POST /translate and GET /languages, as self-hosted clients call them.

import { getJSON, postJSON } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

export async function create(root) {
  const languages = await getJSON("/languages").catch(() => []);
  const option = (l) => h("option", { value: l.code }, `${l.name} (${l.code})`);
  const source = h("select", { id: "translate-source", "aria-label": t("source") }, h("option", { value: "auto" }, t("auto")), ...languages.map(option));
  const target = h("select", { id: "translate-target", "aria-label": t("target") }, ...languages.map(option));
  target.value = languages.find((l) => l.code.startsWith("pt"))?.code ?? languages[0]?.code ?? "";
  const text = h("textarea", { id: "translate-text", rows: 4, placeholder: t("translate_placeholder"), "aria-label": t("translate_placeholder") });
  const out = h("div", { id: "translate-out", class: "result plain", "aria-live": "polite" });
  const run = h("button", { type: "submit", id: "translate-run" }, t("translate"));

  async function translate(e) {
    e.preventDefault();
    run.disabled = true;
    try {
      const answer = await postJSON("/translate", { q: text.value, source: source.value, target: target.value, format: "text" });
      const found = answer.detectedLanguage;
      out.replaceChildren(h("div", {}, answer.translatedText),
        found ? h("div", { class: "stats" }, `${t("detected")}: ${found.language} (${Math.round(found.confidence)}%)`) : null);
    } catch (err) {
      out.replaceChildren(h("div", { class: "error", role: "alert" }, err.message));
    } finally {
      run.disabled = false;
    }
  }

  root.append(h("form", { class: "task", onsubmit: translate },
    h("div", { class: "row" }, h("label", {}, `${t("source")} `, source), h("label", {}, `${t("target")} `, target)),
    text, h("div", { class: "row" }, run), out));
}
