// The Talk tab: a spoken conversation with the chat model. Hold the button (or Space on it) and speak; on
// release the recording (the browser's MediaRecorder: webm/opus) goes to POST /v1/audio/transcriptions, whose
// words and language appear at once; the model picked in the header answers (POST /v1/chat/completions,
// streamed); and POST /v1/audio/speech speaks the answer in the voice of the language heard: joe for English,
// joe-pt-br for Portuguese. The small chat models answer best in English, so Portuguese goes through
// POST /translate both ways when the server translates. Every request goes to this server; the audio plays
// from a blob: URL.

import { call, events, getJSON, postJSON } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { currentModel } from "./models.js";
import { samplingFields, values } from "./params.js";

const VOICES = { en: "joe", pt: "joe-pt-br" };
const SYSTEM = "You are talking with someone out loud. Answer in one or two short sentences of plain words: no lists, no markdown.";
const MAX_TOKENS = 80; // a spoken answer is short
const TURNS_KEPT = 6; // the conversation the model sees: the last few messages

export async function create(root) {
  const paths = await getJSON("/openapi.json", { ask: false }).then((s) => Object.keys(s.paths || {})).catch(() => []);
  const translates = paths.includes("/translate");
  const hold = h("button", { type: "button", id: "talk-hold", class: "talk-hold", "aria-describedby": "talk-help" }, t("hold_to_talk"));
  // Detection can miss on a few words; a speaker who knows the language says it once
  const chosen = h("select", { id: "talk-language", "aria-label": t("language") },
    h("option", { value: "" }, t("auto")), h("option", { value: "en" }, "English"), h("option", { value: "pt" }, "Português"));
  const status = h("p", { id: "talk-status", class: "note", role: "status" });
  const log = h("ol", { id: "talk-log", "aria-live": "polite" });
  const history = []; // what the model was told and answered, in English when translating
  let microphone = null;
  let recorder = null;
  let held = false; // the button is down (the microphone may still be opening)
  let busy = false;
  let lastUrl = null;

  async function start() {
    if (busy || recorder || held) return;
    held = true;
    try {
      microphone ||= await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      held = false;
      return say(t("no_microphone", { why: err.message }), true);
    }
    if (!held) return; // released while the browser was opening the microphone (asking the first time)
    const chunks = [];
    recorder = new MediaRecorder(microphone);
    recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
    recorder.addEventListener("stop", (e) => turn(new Blob(chunks, { type: e.target.mimeType })), { once: true });
    recorder.start();
    hold.classList.add("recording");
    say(t("listening"));
  }

  function finish() {
    held = false;
    if (!recorder) return;
    const done = recorder;
    recorder = null;
    hold.classList.remove("recording");
    if (done.state !== "inactive") done.stop();
  }

  // One exchange: the words heard, the answer written, the answer spoken.
  async function turn(recording) {
    busy = hold.disabled = true;
    try {
      say(t("transcribing"));
      const form = new FormData();
      form.append("file", recording, recording.type.includes("ogg") ? "speech.ogg" : "speech.webm");
      form.append("response_format", "verbose_json");
      if (chosen.value) form.append("language", chosen.value);
      const heard = await (await call("/v1/audio/transcriptions", { method: "POST", form })).json();
      const words = heard.text.trim();
      if (!words) return say(t("heard_nothing"));
      const language = chosen.value || (heard.language === "portuguese" ? "pt" : "en");
      log.append(message("user", words, language));
      const viaEnglish = language === "pt" && translates;
      history.push({ role: "user", content: viaEnglish ? await translate(words, "pt", "en") : words });
      say(t("thinking"));
      const answer = message("assistant", "", language);
      log.append(answer);
      const reply = await chat(answer.querySelector(".body"));
      history.push({ role: "assistant", content: reply });
      const spoken = viaEnglish && reply ? await translate(reply, "en", "pt") : reply;
      answer.querySelector(".body").textContent = spoken;
      answer.classList.remove("streaming");
      if (!/\w/.test(spoken)) return say(t("nothing_to_say"));
      say(t("speaking"));
      const body = { input: spoken, voice: VOICES[language], response_format: "wav" };
      const audio = await (await call("/v1/audio/speech", { method: "POST", json: body })).blob();
      if (lastUrl) URL.revokeObjectURL(lastUrl);
      lastUrl = URL.createObjectURL(audio);
      const player = h("audio", { controls: true, src: lastUrl, class: "player" });
      answer.append(player);
      player.addEventListener("ended", () => say(t("hold_again")), { once: true });
      await player.play().catch(() => say(t("press_play")));
    } catch (err) {
      say(err.message, true);
    } finally {
      busy = hold.disabled = false;
    }
  }

  // The answer streamed into `body`; its whole text.
  async function chat(body) {
    const p = values();
    const request = {
      model: currentModel()?.id, ...samplingFields(p), n: 1, max_completion_tokens: Math.min(p.max_new_tokens, MAX_TOKENS),
      messages: [{ role: "system", content: SYSTEM }, ...history.slice(-TURNS_KEPT)],
    };
    let text = "";
    for await (const event of events(await call("/v1/chat/completions", { method: "POST", json: request }))) {
      text += event.choices?.[0]?.delta?.content || "";
      body.textContent = text;
    }
    return text.trim();
  }

  async function translate(q, source, target) {
    return (await postJSON("/translate", { q, source, target })).translatedText;
  }

  function message(role, text, language) {
    const who = role === "user" ? t("you") : t("assistant");
    return h("li", { class: `msg ${role}${role === "assistant" ? " streaming" : ""}`, lang: language === "pt" ? "pt-BR" : "en" },
      h("div", { class: "role" }, `${who} · ${language === "pt" ? "português" : "English"}`), h("div", { class: "body" }, text));
  }

  function say(text, bad = false) {
    status.textContent = text;
    status.classList.toggle("error", bad);
  }

  // Hold to talk: the pointer (mouse, finger) or Space/Enter while the button has the focus.
  hold.addEventListener("pointerdown", (e) => {
    hold.setPointerCapture?.(e.pointerId); // the release counts even off the button
    start();
  });
  for (const name of ["pointerup", "pointercancel"]) hold.addEventListener(name, finish);
  hold.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) {
      e.preventDefault();
      start();
    }
  });
  hold.addEventListener("keyup", (e) => (e.key === " " || e.key === "Enter") && finish());
  hold.addEventListener("contextmenu", (e) => e.preventDefault()); // a long press on a phone is not a menu

  root.append(h("div", { class: "task talk" },
    h("p", { id: "talk-help", class: "note" }, t("talk_help")),
    h("div", { class: "row" }, hold, h("label", {}, `${t("language")} `, chosen)), status, log));
}
