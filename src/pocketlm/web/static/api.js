// Talking to the server that served this page: same origin, relative paths, nothing else.
//
// call() adds the API key (kept in localStorage once the user gives it), turns every error answer into
// an ApiError that carries the server's own words, and on a 401 asks for a key (through the prompt
// app.js installs) and tries again. events() reads a server-sent-events body chunk by chunk.

const KEY = "pocketlm.apiKey";
let askForKey = async () => null;

export const apiKey = {
  get: () => localStorage.getItem(KEY) || "",
  set: (key) => (key ? localStorage.setItem(KEY, key) : localStorage.removeItem(KEY)),
};

export function onKeyNeeded(prompt) {
  askForKey = prompt;
}

export class ApiError extends Error {
  constructor(status, message, param = null) {
    super(message);
    this.status = status;
    this.param = param;
  }
}

// The message of any error body this server sends: OpenAI's {"error": {message, param}},
// TGI's and LibreTranslate's {"error": "..."}, or plain text.
export function errorFrom(status, body) {
  const error = body && typeof body === "object" ? body.error ?? body.detail : body;
  if (error && typeof error === "object") return new ApiError(status, error.message || JSON.stringify(error), error.param ?? null);
  return new ApiError(status, String(error || `HTTP ${status}`));
}

export async function call(path, { method = "GET", json, form, signal, headers = {}, ask = true } = {}) {
  for (;;) {
    const init = { method, signal, headers: { ...headers } };
    if (apiKey.get()) init.headers.Authorization = `Bearer ${apiKey.get()}`;
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.body = form;
    }
    const response = await fetch(path, init);
    if (response.ok) return response;
    const text = await response.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {}
    const error = errorFrom(response.status, body);
    if (response.status === 401 && ask && (await askForKey(error.message))) continue; // a new key: try again
    throw error;
  }
}

export async function getJSON(path, options) {
  return (await call(path, options)).json();
}

export async function postJSON(path, json, options = {}) {
  return (await call(path, { ...options, method: "POST", json })).json();
}

// Yield each `data:` event of a streamed answer as parsed JSON; an {"error": ...} event is thrown.
export async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const event = JSON.parse(data);
        if (event.error) throw errorFrom(response.status, event);
        yield event;
      }
    }
  }
}
