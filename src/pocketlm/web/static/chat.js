// The Chat tab: conversations with the model's chat template (POST /v1/chat/completions, streamed).
//
// Send streams an answer; Stop aborts the fetch, and the server frees the slot when the connection
// closes. Regenerate draws another answer for the last turn (kept as a variant beside the others);
// Edit rewrites a message of yours and answers again from there. Everything is saved as it changes.
// With tools (the sampling panel), an answer may be calls: they are shown as calls, and what you send next
// is the result of the first call not yet answered (role "tool"); once every call has its result, the
// model answers again.

import { $, h, append, clear, download } from "./dom.js";
import { t } from "./i18n.js";
import { currentModel, onModelsChange, refreshModels } from "./models.js";
import { emptyVariants, renderBody, renderCalls, renderError, renderStats, streamInto, viewPicker } from "./output.js";
import { samplingFields, values } from "./params.js";
import * as store from "./store.js";
import { fromChat } from "./tokens.js";

export function createChat(root, server) {
  let conversations = store.loadAll();
  let current = conversations[0] || store.newConversation();
  let running = null; // {controller} while an answer streams
  const views = new Map(); // variant -> the view chosen for it (not saved)

  const list = $("#conv-list", root);
  const messages = $("#messages", root);
  const input = $("#message-input", root);
  const system = $("#system-prompt", root);
  const sendButton = $("#send", root);
  const stopButton = $("#stop", root);
  const contextBar = $("#context", root);

  function persist() {
    if (current.messages.length && !conversations.includes(current)) conversations.unshift(current);
    store.saveAll(conversations);
    renderList();
  }

  function renderList() {
    clear(list);
    for (const c of conversations) {
      list.append(h("li", { class: c === current ? "active" : "" },
        h("button", { type: "button", class: "conv", "aria-current": c === current ? "true" : undefined,
          onclick: () => open(c) }, c.title || t("new_chat")),
        h("button", { type: "button", class: "quiet icon", title: t("delete"), "aria-label": `${t("delete")}: ${c.title}`,
          onclick: () => remove(c) }, "×")));
    }
  }

  function open(c) {
    if (running) return;
    current = c;
    system.value = c.system || "";
    renderList();
    renderMessages();
  }

  function remove(c) {
    if (running) return;
    conversations = conversations.filter((x) => x !== c);
    store.saveAll(conversations);
    if (c === current) open(conversations[0] || store.newConversation());
    else renderList();
  }

  function renderMessages() {
    clear(messages);
    if (!current.messages.length) messages.append(h("li", { class: "empty" }, t("empty_chat")));
    current.messages.forEach((m, i) => messages.append(renderMessage(m, i)));
    renderContext();
  }

  function renderMessage(m, i) {
    const li = h("li", { class: `msg ${m.role}`, dataset: { index: i } });
    if (m.role === "tool") {
      return append(li, [h("div", { class: "role" }, t("tool_result", { name: m.name })), h("div", { class: "plain body" }, m.content)]);
    }
    li.append(h("div", { class: "role" }, m.role === "user" ? t("you") : t("assistant")));
    if (m.role === "user") {
      li.append(h("div", { class: "plain body" }, m.content),
        h("div", { class: "actions" }, h("button", { type: "button", class: "quiet", onclick: () => edit(li, i) }, t("edit"))));
      return li;
    }
    const v = m.variants[m.shown];
    const view = views.get(v) || (v.tokens?.length ? "tokens" : "markdown");
    const last = i === current.messages.length - 1;
    const body = v.content || !v.tool_calls?.length ? h("div", { class: "body" }, renderBody(v, view)) : null;
    append(li, [body, renderCalls(v.tool_calls), renderError(v.error), renderStats(v.stats, v.finish_reason)]);
    const actions = h("div", { class: "actions" });
    if (m.variants.length > 1) {
      actions.append(h("span", { class: "variants" },
        h("button", { type: "button", class: "quiet icon", "aria-label": "previous", disabled: m.shown === 0, onclick: () => show(m, m.shown - 1) }, "‹"),
        h("span", {}, t("variant", { i: m.shown + 1, n: m.variants.length })),
        h("button", { type: "button", class: "quiet icon", "aria-label": "next", disabled: m.shown === m.variants.length - 1, onclick: () => show(m, m.shown + 1) }, "›")));
    }
    actions.append(viewPicker(view, Boolean(v.tokens?.length), (chosen) => { views.set(v, chosen); renderMessages(); }));
    if (last && !running) actions.append(h("button", { type: "button", class: "quiet", id: "regenerate", onclick: () => answer(i) }, t("regenerate")));
    actions.append(h("button", { type: "button", class: "quiet", onclick: () => navigator.clipboard?.writeText(v.content) }, t("copy")));
    li.append(actions);
    return li;
  }

  function show(m, k) {
    m.shown = k;
    persist();
    renderMessages();
  }

  function edit(li, i) {
    if (running) return;
    const box = h("textarea", { class: "edit", rows: 3, value: current.messages[i].content, "aria-label": t("edit") });
    const save = () => {
      current.messages = current.messages.slice(0, i);
      current.messages.push({ role: "user", content: box.value });
      answer(i + 1);
    };
    box.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); save(); }
      if (e.key === "Escape") renderMessages();
    });
    li.replaceChildren(li.firstChild, box, h("div", { class: "actions" },
      h("button", { type: "button", onclick: save }, t("save_send")),
      h("button", { type: "button", class: "quiet", onclick: renderMessages }, t("cancel"))));
    box.focus();
  }

  function renderContext() {
    const call = pendingCall();
    input.placeholder = call ? t("tool_reply", { name: call.function.name }) : t("message_placeholder");
    const last = [...current.messages].reverse().find((m) => m.role === "assistant");
    const stats = last?.variants[last.shown]?.stats;
    const used = stats?.prompt_tokens != null ? stats.prompt_tokens + Math.round(stats.completion_tokens / Math.max(1, stats.n || 1)) : 0;
    const n_ctx = currentModel()?.n_ctx ?? server.n_ctx;
    contextBar.value = used;
    contextBar.max = n_ctx || 1;
    $("#context-label", root).textContent = `${t("context")}: ${used} ${t("of")} ${n_ctx ?? "?"}`;
  }

  // The messages sent for an answer at position `at`: the system prompt, then every earlier turn.
  function requestMessages(at) {
    const out = current.system ? [{ role: "system", content: current.system }] : [];
    for (const m of current.messages.slice(0, at)) {
      if (m.role === "tool") out.push({ role: "tool", tool_call_id: m.tool_call_id, content: m.content });
      else if (m.role !== "assistant") out.push({ role: m.role, content: m.content });
      else {
        const v = m.variants[m.shown];
        out.push(v.tool_calls?.length ? { role: "assistant", content: v.content || null, tool_calls: v.tool_calls } : { role: "assistant", content: v.content });
      }
    }
    return out;
  }

  // The first call of the last answer that has no result yet, or null.
  function pendingCall() {
    const at = current.messages.findLastIndex((m) => m.role === "assistant");
    const calls = at < 0 ? [] : current.messages[at].variants[current.messages[at].shown].tool_calls || [];
    const answered = new Set(current.messages.slice(at + 1).map((m) => m.tool_call_id));
    return calls.find((c) => !answered.has(c.id)) || null;
  }

  // Stream an answer into message `at` (a new assistant turn, or more variants of an existing one).
  async function answer(at) {
    const p = values();
    current.system = system.value;
    if (!current.title) current.title = (current.messages.find((m) => m.role === "user")?.content || "").slice(0, 48);
    const body = {
      model: currentModel()?.id, messages: requestMessages(at), max_completion_tokens: p.max_new_tokens, ...samplingFields(p),
      ...(p.logprobs ? { logprobs: true, top_logprobs: p.top_logprobs } : {}),
      // One call an answer: a small model allowed several goes on calling until the length limit.
      ...(p.tools ? { tools: p.tools, tool_choice: p.tool_choice, parallel_tool_calls: false } : {}),
    };
    if (!current.messages[at]) current.messages[at] = { role: "assistant", shown: 0, variants: [] };
    const m = current.messages[at];
    const first = m.variants.length;
    const fresh = emptyVariants(p.n, p.logprobs);
    m.variants.push(...fresh);
    m.shown = first;
    const controller = new AbortController();
    running = { controller };
    setBusy(true);
    persist();
    renderMessages();
    await streamInto("/v1/chat/completions", body, fresh, controller, {
      read: (choice) => ({
        text: choice.delta?.content, tokens: choice.logprobs && fromChat(choice.logprobs), calls: choice.delta?.tool_calls,
      }),
      redraw: () => renderStreaming(at),
    });
    running = null;
    setBusy(false);
    persist();
    renderMessages();
    refreshModels(); // the model may have loaded for this answer, another unloaded
  }

  // While streaming only the growing message is redrawn, and the list follows it if it was at the bottom.
  function renderStreaming(at) {
    const follow = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    const old = messages.querySelector(`li[data-index="${at}"]`);
    const fresh = renderMessage(current.messages[at], at);
    fresh.classList.add("streaming");
    old ? old.replaceWith(fresh) : messages.append(fresh);
    if (follow) messages.scrollTop = messages.scrollHeight;
  }

  function setBusy(busy) {
    sendButton.hidden = busy;
    stopButton.hidden = !busy;
    root.classList.toggle("busy", busy);
  }

  function send() {
    const text = input.value;
    if (!text.trim() || running) return;
    input.value = "";
    const call = pendingCall();
    if (!call) current.messages.push({ role: "user", content: text });
    else current.messages.push({ role: "tool", tool_call_id: call.id, name: call.function.name, content: text });
    if (!pendingCall()) answer(current.messages.length);
    else { persist(); renderMessages(); }
  }

  function stop() {
    running?.controller.abort();
  }

  $("#composer", root).addEventListener("submit", (e) => { e.preventDefault(); send(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  root.addEventListener("keydown", (e) => e.key === "Escape" && running && stop());
  stopButton.addEventListener("click", stop);
  system.addEventListener("change", () => { current.system = system.value; if (current.messages.length) persist(); });
  $("#new-chat", root).addEventListener("click", () => open(store.newConversation()));
  $("#export", root).addEventListener("click", () =>
    download(new Blob([store.exportJSON(conversations)], { type: "application/json" }), "pocketlm-conversations.json"));
  $("#import", root).addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    try {
      const added = store.importJSON(await file.text());
      const known = new Set(conversations.map((c) => c.id));
      conversations = [...added.filter((c) => !known.has(c.id)), ...conversations];
      store.saveAll(conversations);
      open(added[0] || current);
      flash(t("imported", { n: added.length }));
    } catch (err) {
      flash(t("import_failed", { why: err.message }), true);
    }
  });

  function flash(text, bad = false) {
    const note = $("#chat-note", root);
    note.textContent = text;
    note.className = bad ? "note error" : "note";
  }

  onModelsChange(renderContext);
  open(current);
  return { stop };
}
