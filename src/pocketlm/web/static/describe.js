// The Describe tab, as the course ends: an image becomes a caption, the caption Portuguese (or English),
// and that text speech, in one POST /v1/pipelines/describe. Every stage's output is shown.

import { call } from "./api.js";
import { audioResult, fetchStored } from "./audio.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

export function create(root) {
  const file = h("input", { type: "file", id: "describe-image", accept: "image/png,image/jpeg,image/webp", "aria-label": t("choose_image") });
  const language = h("select", { id: "describe-language", "aria-label": t("language") },
    h("option", { value: "pt" }, "Português (pt)"), h("option", { value: "en" }, "English (en)"));
  const preview = h("img", { id: "describe-preview", alt: "", hidden: true, style: "max-width: 16em; max-height: 16em; border-radius: 6px" });
  const out = h("div", { id: "describe-out", class: "result", "aria-live": "polite" });
  const run = h("button", { type: "submit", id: "describe-run" }, t("describe_button"));
  let previewUrl = null;

  file.addEventListener("change", () => {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = file.files[0] ? URL.createObjectURL(file.files[0]) : null;
    preview.hidden = !previewUrl;
    if (previewUrl) preview.src = previewUrl; // a blob: URL, local to the browser
  });

  async function describe(e) {
    e.preventDefault();
    if (!file.files[0]) return out.replaceChildren(h("div", { class: "error" }, t("choose_image")));
    run.disabled = true;
    try {
      const form = new FormData();
      form.append("image", file.files[0]);
      form.append("language", language.value);
      const answer = await (await call("/v1/pipelines/describe", { method: "POST", form })).json();
      const audio = await fetchStored(answer.audio.url);
      out.replaceChildren(
        h("dl", {}, h("dt", {}, `${t("caption")} (${answer.model})`), h("dd", { id: "describe-caption" }, answer.caption),
          h("dt", {}, `${t("translation")} (${answer.language})`), h("dd", { id: "describe-translation" }, answer.translation)),
        audioResult(audio, `description.${answer.audio.format}`));
    } catch (err) {
      out.replaceChildren(h("div", { class: "error", role: "alert" }, err.message));
    } finally {
      run.disabled = false;
    }
  }

  root.append(h("form", { class: "task", onsubmit: describe },
    h("div", { class: "row" }, file, h("label", {}, `${t("language")} `, language)), preview, h("div", { class: "row" }, run), out));
}
