// Generated tokens coloured by probability, with their alternatives on hover, focus or tap.
//
// Both OpenAI logprob layouts become one list: {token, logprob, bytes?, top: [{token, logprob, bytes?}]}.
// Colour runs from red (the sampler took an unlikely token) to green (it was nearly certain).
// A character can take several tokens (an emoji is often three or four byte tokens). Chat's layout gives each
// token's bytes: the character shows on the token that completes it, the tokens before it as small blocks of
// their own colour, and the popover names their bytes (‹f0 9f›) rather than a replacement character.

import { h, clear } from "./dom.js";
import { t } from "./i18n.js";

export function fromChat(logprobs) {
  return (logprobs?.content || []).map((c) => ({
    token: c.token, logprob: c.logprob, bytes: c.bytes,
    top: (c.top_logprobs || []).map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes })),
  }));
}

export function fromCompletion(logprobs) {
  if (!logprobs) return [];
  return logprobs.tokens.map((token, i) => ({
    token, logprob: logprobs.token_logprobs[i],
    top: Object.entries(logprobs.top_logprobs[i] || {}).map(([tok, lp]) => ({ token: tok, logprob: lp })),
  }));
}

export const percent = (logprob) => `${(Math.exp(logprob) * 100).toFixed(Math.exp(logprob) < 0.1 ? 2 : 1)}%`;

export function colour(p) {
  return `hsla(${Math.round(p * 120)}, 75%, 50%, ${0.18 + 0.22 * (1 - p)})`;
}

// Whitespace made visible, for a token shown on its own.
export const visible = (s) => s.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥") || "∅";

// A token on its own: its text, or its bytes when it holds part of a character (the API's text is then U+FFFD).
const hex = (bytes) => bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");
const label = (tok) => (tok.bytes && tok.token.includes("\ufffd") ? `‹${hex(tok.bytes)}›` : visible(tok.token));

export function renderTokens(tokens) {
  const out = h("div", { class: "tokens" });
  const decoder = new TextDecoder();  // streaming: a character split over tokens comes out with its last one
  tokens.forEach((tok, i) => {
    const p = Math.exp(tok.logprob);
    const text = tok.bytes ? decoder.decode(new Uint8Array(tok.bytes), { stream: true }) : tok.token;
    out.append(h("span", { class: "tok", tabindex: 0, role: "button", style: `background:${colour(p)}`,
      dataset: { index: i, p: p.toFixed(4) }, "aria-label": `${label(tok)} ${percent(tok.logprob)}` }, text));
  });
  out.tokens = tokens;
  return out;
}

// One popover for the whole page, moved to whichever token is pointed at.
const pop = h("div", { id: "token-pop", role: "tooltip", hidden: true });

export function installTokenPopover() {
  document.body.append(pop);
  const show = (e) => {
    const span = e.target.closest?.(".tok");
    const tokens = span?.parentElement?.tokens;
    if (!tokens) return;
    fill(tokens[Number(span.dataset.index)]);
    const box = span.getBoundingClientRect();
    pop.hidden = false;
    const left = Math.min(box.left, window.innerWidth - pop.offsetWidth - 8);
    const below = box.bottom + 6 + pop.offsetHeight < window.innerHeight;
    pop.style.left = `${Math.max(8, left)}px`;
    pop.style.top = `${below ? box.bottom + 6 : box.top - pop.offsetHeight - 6}px`;
  };
  const hide = (e) => {
    if (!e.relatedTarget?.closest?.("#token-pop")) pop.hidden = true;
  };
  document.addEventListener("mouseover", show);
  document.addEventListener("focusin", show);
  document.addEventListener("click", (e) => (e.target.closest(".tok") ? show(e) : (pop.hidden = true)));
  document.addEventListener("mouseout", (e) => e.target.closest?.(".tok") && hide(e));
  document.addEventListener("focusout", (e) => e.target.closest?.(".tok") && hide(e));
  document.addEventListener("keydown", (e) => e.key === "Escape" && (pop.hidden = true));
}

function fill(tok) {
  clear(pop);
  const alternatives = tok.top.length ? tok.top : [tok];
  const chosen = (a) => label(a) === label(tok);  // byte tokens all read "\ufffd": their bytes tell them apart
  pop.append(
    h("div", { class: "pop-head" }, h("code", {}, label(tok)), " ", t("chosen"), " · ", percent(tok.logprob)),
    h("div", { class: "pop-title" }, t("alternatives")),
    h("table", {}, ...alternatives.map((a) => altRow(a, chosen(a))), alternatives.some(chosen) ? null : altRow(tok, true)),
  );
}

function altRow(a, chosen) {
  const p = Math.exp(a.logprob);
  return h("tr", { class: chosen ? "chosen" : "" },
    h("td", {}, h("code", {}, label(a))),
    h("td", { class: "bar" }, h("span", { style: `width:${Math.max(1, p * 100)}%;background:${colour(p)}` })),
    h("td", { class: "num" }, percent(a.logprob)));
}
