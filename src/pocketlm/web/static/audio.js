// Audio from the server as a player and a download link. The bytes are fetched with the API key (an
// <audio src> could not send it) and played from a blob: URL, which stays inside the browser.

import { call } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

let lastUrl = null;

export function audioResult(blob, name) {
  if (lastUrl) URL.revokeObjectURL(lastUrl);
  lastUrl = URL.createObjectURL(blob);
  return h("div", { class: "row" },
    h("audio", { controls: true, src: lastUrl, class: "player" }),
    h("a", { href: lastUrl, download: name, class: "button quiet" }, t("download")));
}

// A stored file the server answered with (its URL is absolute): fetched by path, so from this origin.
export async function fetchStored(url) {
  return (await call(new URL(url, location.href).pathname)).blob();
}
