// The Speak tab: OpenAI's POST /v1/audio/speech with the voices of GET /v1/audio/voices.

import { call, getJSON } from "./api.js";
import { audioResult } from "./audio.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

const FORMATS = ["wav", "mp3", "flac"];

export async function create(root) {
  const { voices = [] } = await getJSON("/v1/audio/voices").catch(() => ({}));
  const voice = h("select", { id: "speak-voice", "aria-label": t("voice") },
    ...voices.map((v) => h("option", { value: v.id, title: v.description }, `${v.name} (${v.language})`)));
  const speed = h("input", { type: "number", id: "speak-speed", min: 0.25, max: 4, step: 0.05, value: 1, "aria-label": "speed" });
  const format = h("select", { id: "speak-format", "aria-label": t("format") }, ...FORMATS.map((f) => h("option", { value: f }, f)));
  const text = h("textarea", { id: "speak-text", rows: 3, placeholder: t("speak_placeholder"), "aria-label": t("speak_placeholder") });
  const out = h("div", { id: "speak-out", class: "result", "aria-live": "polite" });
  const run = h("button", { type: "submit", id: "speak-run" }, t("speak_button"));

  async function speak(e) {
    e.preventDefault();
    run.disabled = true;
    try {
      const body = { input: text.value, voice: voice.value, speed: Number(speed.value), response_format: format.value };
      const audio = await (await call("/v1/audio/speech", { method: "POST", json: body })).blob();
      out.replaceChildren(audioResult(audio, `speech.${format.value}`));
    } catch (err) {
      out.replaceChildren(h("div", { class: "error", role: "alert" }, err.message));
    } finally {
      run.disabled = false;
    }
  }

  root.append(h("form", { class: "task", onsubmit: speak },
    h("div", { class: "row" }, h("label", {}, `${t("voice")} `, voice), h("label", {}, h("code", {}, "speed"), " ", speed),
      h("label", {}, `${t("format")} `, format)),
    text, h("div", { class: "row" }, run), out));
}
