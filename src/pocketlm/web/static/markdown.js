// A small Markdown renderer that builds DOM nodes and nothing else.
//
// Model output is untrusted: a model asked to repeat "<img src=x onerror=...>" will. So nothing here
// ever assigns innerHTML; every piece of text goes through a text node, and the only elements made
// are the handful below. Links keep their text and open only http(s) addresses; images are shown as
// their text (loading one would be a request the user did not ask for).
//
// Blocks: fenced code (```), headings (#), lists (-, *, +, 1.), quotes (>), rules (---), paragraphs.
// Inline: `code`, **bold**, *italic* / _italic_, [text](http://...).

import { h } from "./dom.js";

export function renderMarkdown(source) {
  const root = document.createDocumentFragment();
  const lines = String(source).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)\s*([\w+-]*)/);
    if (fence) {
      const body = [];
      for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence[1]); i++) body.push(lines[i]);
      i++; // the closing fence (absent while a stream is still inside the block)
      root.append(h("pre", {}, h("code", { dataset: fence[2] ? { lang: fence[2] } : {} }, body.join("\n"))));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      root.append(h(`h${Math.min(heading[1].length + 2, 6)}`, {}, inline(heading[2])));
      i++;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      root.append(h("hr"));
      i++;
      continue;
    }
    if (/^\s*>/.test(line)) {
      const body = [];
      for (; i < lines.length && /^\s*>/.test(lines[i]); i++) body.push(lines[i].replace(/^\s*>\s?/, ""));
      root.append(h("blockquote", {}, renderMarkdown(body.join("\n"))));
      continue;
    }
    const item = listItem(line);
    if (item) {
      const list = h(item.ordered ? "ol" : "ul");
      if (item.ordered && item.start !== 1) list.start = item.start;
      for (let it; i < lines.length && (it = listItem(lines[i])) && it.ordered === item.ordered; i++) {
        list.append(h("li", {}, inline(it.text)));
      }
      root.append(list);
      continue;
    }
    if (!line.trim()) {
      i++;
      continue;
    }
    const para = [];
    for (; i < lines.length && lines[i].trim() && !startsBlock(lines[i]); i++) para.push(lines[i]);
    const p = h("p");
    para.forEach((text, k) => {
      if (k) p.append(h("br"));
      p.append(inline(text));
    });
    root.append(p);
  }
  return root;
}

function listItem(line) {
  const m = line.match(/^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/);
  return m && { ordered: !m[1], start: m[2] ? Number(m[2]) : 1, text: m[3] };
}

function startsBlock(line) {
  return /^\s*(```|~~~|#{1,6}\s|>)/.test(line) || Boolean(listItem(line));
}

// Inline spans, left to right: the earliest match wins, text between matches stays text.
const INLINE = [
  { re: /`([^`]+)`/, make: (m) => h("code", {}, m[1]) },
  { re: /\*\*(.+?)\*\*|__(.+?)__/, make: (m) => h("strong", {}, inline(m[1] ?? m[2])) },
  { re: /\*([^*\s][^*]*?)\*|\b_([^_\s][^_]*?)_\b/, make: (m) => h("em", {}, inline(m[1] ?? m[2])) },
  { re: /!?\[([^\]]*)\]\(([^)\s]+)\)/, make: link },
];

export function inline(text) {
  const out = document.createDocumentFragment();
  let rest = text;
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      const m = rule.re.exec(rest);
      if (m && (!best || m.index < best.m.index)) best = { m, rule };
    }
    if (!best) {
      out.append(rest);
      break;
    }
    out.append(rest.slice(0, best.m.index), best.rule.make(best.m));
    rest = rest.slice(best.m.index + best.m[0].length);
  }
  return out;
}

function link(m) {
  if (m[0].startsWith("!")) return document.createTextNode(m[0]); // images stay text
  let url;
  try {
    url = new URL(m[2]);
  } catch {
    return document.createTextNode(m[0]);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return document.createTextNode(m[0]);
  return h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow", title: url.href }, m[1] || url.href);
}
