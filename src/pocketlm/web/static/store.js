// Conversations, kept in the browser's localStorage and nowhere else.
//
// A conversation: {id, title, created, system, messages}. A user message: {role: "user", content}.
// An assistant message holds every answer drawn for that turn (n > 1, or Regenerate) as variants,
// one shown: {role: "assistant", shown, variants: [{content, tokens, tool_calls, stats, error}]}. A function's
// result answering one of the shown variant's calls: {role: "tool", tool_call_id, name, content}.
// The export file is {"pocketlm_conversations": 1, "conversations": [...]}.

const STORE = "pocketlm.conversations";
const FORMAT = "pocketlm_conversations";

export function loadAll() {
  try {
    const list = JSON.parse(localStorage.getItem(STORE) || "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

export function saveAll(list) {
  try {
    localStorage.setItem(STORE, JSON.stringify(list));
  } catch {
    // Storage full: drop token details (the bulk) from older conversations, keep the text.
    for (const c of list.slice(1)) for (const m of c.messages) for (const v of m.variants || []) delete v.tokens;
    localStorage.setItem(STORE, JSON.stringify(list));
  }
}

export function newConversation() {
  return { id: crypto.randomUUID?.() || String(Date.now()) + Math.random(), title: "", created: Date.now(), system: "", messages: [] };
}

export function exportJSON(list) {
  return JSON.stringify({ [FORMAT]: 1, conversations: list }, null, 2);
}

// Parse an export file; throws Error with the reason when it is not one.
export function importJSON(text) {
  const data = JSON.parse(text);
  const list = Array.isArray(data) ? data : data?.conversations;
  if (!Array.isArray(list)) throw new Error(`expected {"${FORMAT}": 1, "conversations": [...]}`);
  return list.map((c, i) => {
    if (!c || !Array.isArray(c.messages)) throw new Error(`conversation ${i} has no "messages" list`);
    const messages = c.messages.map((m, j) => {
      if (m.role === "user" || m.role === "system") return { role: m.role, content: String(m.content ?? "") };
      if (m.role === "tool") {
        return { role: "tool", tool_call_id: String(m.tool_call_id ?? ""), name: String(m.name ?? ""), content: String(m.content ?? "") };
      }
      if (m.role !== "assistant") throw new Error(`conversation ${i}, message ${j}: unknown role ${JSON.stringify(m.role)}`);
      const variants = Array.isArray(m.variants) ? m.variants : [{ content: m.content }];
      return { role: "assistant", shown: Math.min(Number(m.shown) || 0, variants.length - 1),
        variants: variants.map((v) => ({ ...v, content: String(v.content ?? "") })) };
    });
    return { ...newConversation(), ...c, system: String(c.system ?? ""), messages };
  });
}
