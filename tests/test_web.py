"""The web playground end to end: headless Chromium driving the page served by a real `pocketlm serve`.

The browser is Debian's `chromium` (installed here with apt-get when missing), driven by Playwright for
Python through `executable_path`. Every request the page makes is recorded; anything not addressed to
the server on 127.0.0.1 is blocked and fails the test that made it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from api_server import Server
from test_structured_api import CITY_WEATHER
from tiny_models import tiny_model_dir

DEFAULT = "smollm2-135m-instruct"
XSS = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> **bold**'


def chromium() -> str:
    """The system's Chromium; apt-get installs it when it is missing (Playwright's own download cannot work offline)."""
    path = shutil.which("chromium")
    if path is None:
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], check=True)
        path = shutil.which("chromium")
    assert path, "chromium is not installed and apt-get could not install it"
    return path


TINY = "tiny-llama"  # a second model the page can pick (a tiny random Llama, tests/tiny_models.py)


@pytest.fixture(scope="module")
def server():
    # One thread: on a busy 2-core machine llama.cpp's threads otherwise wait on each other.
    s = Server(
        "--slots", "2", "--threads", "1", "--n-ctx", "1024", "--model", DEFAULT, "--model", str(tiny_model_dir("llama"))
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
    yield b
    b.close()


def open_page(
    browser, url: str, *, locale: str = "en-US", width: int = 1280, height: int = 800, init_script: str | None = None
):
    """A fresh browser context (empty localStorage) on the playground; page.requests lists every URL it asked for,
    page.bodies the body of each request that had one, by path. ``init_script`` runs in the page before its own."""
    context = browser.new_context(locale=locale, viewport={"width": width, "height": height})
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.requests, page.errors, page.bodies = [], [], []
    allowed = urlsplit(url).netloc

    def record(route):
        page.requests.append(route.request.url)
        if route.request.post_data_buffer:
            page.bodies.append((urlsplit(route.request.url).path, route.request.post_data_buffer))
        parts = urlsplit(route.request.url)
        route.continue_() if parts.scheme in ("blob", "data") or parts.netloc == allowed else route.abort()

    context.route("**/*", record)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    return page


@pytest.fixture
def page(browser, server):
    page = open_page(browser, server.url)
    yield page
    page.context.close()
    assert page.errors == []  # no uncaught exception in the page during the test


def set_param(page, name: str, value) -> None:
    page.fill(f"#param-{name}", str(value))


def send(page, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def wait_answered(page, timeout: float = 60_000) -> None:
    page.wait_for_selector("#regenerate", timeout=timeout)


def stored_conversations(page) -> list:
    return json.loads(page.evaluate("localStorage.getItem('pocketlm.conversations')") or "[]")


def test_page_at_root_and_tgi_still_at_post_root(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="/web/app.js">' in page.text
    tgi = httpx.post(server.url + "/", json={"inputs": "Hello", "parameters": {"max_new_tokens": 2}}, timeout=60)
    assert tgi.status_code == 200 and "generated_text" in tgi.json()
    ready = httpx.get(server.url + "/ready").json()
    assert ready["n_ctx"] == 1024 and ready["slots"] == 2


def test_chat_streams_the_answer(page):
    set_param(page, "max_new_tokens", 40)
    # Text shows up while the answer is still streaming, then the answer ends with its statistics. Forty tokens
    # can stream in under half a second, faster than polling from here could catch: the page records it itself.
    page.evaluate("""() => {
        window.seenWhileStreaming = false;
        new MutationObserver(() => {
            const body = document.querySelector('.msg.assistant.streaming .body');
            if (body && /\\S/.test(body.textContent)) window.seenWhileStreaming = true;
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    send(page, "Tell me a short story about a cat.")
    wait_answered(page)
    assert page.evaluate("window.seenWhileStreaming")
    answer = page.locator(".msg.assistant").last
    assert answer.locator(".body").inner_text().strip()
    stats = answer.locator(".stats").inner_text()
    assert "tokens/s" in stats and "prompt" in stats and "completion" in stats
    assert "context: " in page.inner_text("#context-label") and " of 1024" in page.inner_text("#context-label")
    assert page.errors == []


def test_stop_cancels_on_the_server(page, server):
    set_param(page, "max_new_tokens", 2000)
    set_param(page, "temperature", 0)  # greedy: this model then counts on and on ("1. 1", "2. 2", ...)
    send(page, "Count from 1 to 1000, one number per line.")
    expect(page.locator(".msg.assistant.streaming .body")).to_have_text(re.compile(r"\S"), timeout=60_000)
    assert server.metric("pocketlm_active_slots") == 1
    page.click("#stop")
    deadline = time.monotonic() + 15
    while server.metric("pocketlm_active_slots") != 0:
        assert time.monotonic() < deadline, "the slot was not freed after Stop"
        time.sleep(0.1)
    expect(page.locator(".msg.assistant .stats").last).to_contain_text("stopped")
    expect(page.locator("#send")).to_be_visible()


def test_temperature_zero_gives_the_same_answer_twice(page):
    set_param(page, "temperature", 0)
    set_param(page, "max_new_tokens", 16)
    send(page, "Name three colours.")
    wait_answered(page)
    page.click("#regenerate")
    expect(page.locator(".variants")).to_contain_text("2 of 2", timeout=60_000)
    wait_answered(page)
    variants = stored_conversations(page)[0]["messages"][1]["variants"]
    assert len(variants) == 2 and variants[0]["content"].strip()
    assert variants[0]["content"] == variants[1]["content"]


def test_hovering_a_token_shows_its_alternatives(page):
    page.check("#param-logprobs")
    set_param(page, "top_logprobs", 5)
    set_param(page, "max_new_tokens", 8)
    send(page, "Say hello.")
    wait_answered(page)
    answer = stored_conversations(page)[0]["messages"][1]["variants"][0]
    assert answer.get("tokens"), answer  # what the page kept of the answer: its text, error and finish reason
    first = page.locator(".msg.assistant .tok").first
    first.hover()
    pop = page.locator("#token-pop")
    expect(pop).to_be_visible()
    expect(pop).to_contain_text("Alternatives")
    rows = pop.locator("tr")
    assert rows.count() >= 2  # the chosen token and at least one alternative
    assert all(text.endswith("%") for text in pop.locator("td.num").all_inner_texts())
    assert first.get_attribute("style").startswith("background:hsla(")  # coloured by probability
    page.keyboard.press("Escape")
    expect(pop).to_be_hidden()
    page.locator(".msg.assistant .tok").nth(1).focus()  # keyboard: Tab reaches each token, focus shows the same
    expect(pop).to_be_visible()


def test_a_character_split_over_tokens_shows_whole_in_the_token_view(page):
    page.check("#param-logprobs")
    set_param(page, "temperature", 0)
    set_param(page, "max_new_tokens", 6)
    send(page, "Write one emoji.")  # greedy, SmolLM2 answers with emoji of several byte tokens each
    wait_answered(page)
    content = stored_conversations(page)[0]["messages"][1]["variants"][0]["content"]
    assert any(len(ch.encode()) > 1 for ch in content), content  # the case this test is about
    tokens = page.locator(".msg.assistant .tok")
    assert "".join(tokens.all_text_contents()) == content and "\ufffd" not in content
    part = page.locator(".msg.assistant .tok:empty").first  # a token holding only part of a character
    expect(part).to_be_visible()  # a small block of its own colour, to hover or focus
    part.focus()
    expect(page.locator("#token-pop .pop-head")).to_contain_text("‹")  # named by its bytes


def test_conversation_survives_a_reload(page):
    set_param(page, "max_new_tokens", 8)
    send(page, "Remember the word pineapple.")
    wait_answered(page)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#conv-list")).to_contain_text("Remember the word pineapple.")
    expect(page.locator(".msg.user")).to_contain_text("Remember the word pineapple.")
    assert page.locator(".msg.assistant .body").inner_text().strip()


def test_edit_and_resend_answers_again_from_there(page):
    set_param(page, "max_new_tokens", 6)
    set_param(page, "temperature", 0)
    send(page, "Say one word.")
    wait_answered(page)
    send(page, "Say another word.")
    wait_answered(page)
    page.locator(".msg.user").first.get_by_role("button", name="Edit").click()
    box = page.locator("textarea.edit")
    expect(box).to_have_value("Say one word.")  # the message to edit, as it was
    box.fill("Say one colour.")
    page.get_by_role("button", name="Save and send").click()
    wait_answered(page)
    messages = stored_conversations(page)[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]  # the later turns were dropped
    assert messages[0]["content"] == "Say one colour." and messages[1]["variants"][0]["content"].strip()


def test_export_then_import_in_another_browser(browser, server, page, tmp_path):
    page.click(".system summary")  # the system prompt folds away
    page.fill("#system-prompt", "Answer briefly.")
    set_param(page, "max_new_tokens", 4)
    send(page, "Export me.")
    wait_answered(page)
    with page.expect_download() as download:
        page.click("#export")
    path = tmp_path / "conversations.json"
    download.value.save_as(path)
    exported = json.loads(path.read_text())
    assert exported["pocketlm_conversations"] == 1 and exported["conversations"][0]["system"] == "Answer briefly."
    other = open_page(browser, server.url)
    try:
        other.set_input_files("#import", str(path))
        expect(other.locator("#chat-note")).to_contain_text("Imported 1 conversations.")
        expect(other.locator(".msg.user")).to_have_text(re.compile("Export me."))
        expect(other.locator("#system-prompt")).to_have_value("Answer briefly.")
        other.set_input_files(
            "#import", files=[{"name": "bad.json", "mimeType": "application/json", "buffer": b'{"a": 1}'}]
        )
        expect(other.locator("#chat-note")).to_contain_text("Not a pocketlm conversations file")
    finally:
        other.context.close()


def test_model_output_with_markup_is_shown_as_text(page):
    # Completion with echo: the model's output repeats the prompt, markup and all; greedy, so the few new
    # tokens are the same every run (sampled ones once added a bold word of their own).
    page.click("[data-tab=completion]")
    page.fill("#prompt", XSS)
    page.check("#echo")
    set_param(page, "max_new_tokens", 4)
    set_param(page, "temperature", 0)
    page.click("#generate")
    out = page.locator("#completion-out")
    expect(out.locator(".stats").first).to_be_visible(timeout=60_000)
    for view in ("text", "markdown"):
        out.locator(f"button[data-view={view}]").click()
        expect(out.locator(".body")).to_contain_text('<img src=x onerror="window.pwned = 2">')
        expect(out.locator(".body")).to_contain_text("<script>window.pwned = 1</script>")
        assert out.locator("img, script").count() == 0
    assert out.locator(".markdown strong").all_inner_texts()[0] == "bold"  # Markdown still renders around it
    # The same text as a stored chat answer (imported), rendered by the chat's Markdown view.
    page.click("[data-tab=chat]")
    exported = {
        "pocketlm_conversations": 1,
        "conversations": [
            {
                "id": "x",
                "title": "markup",
                "messages": [
                    {"role": "user", "content": "repeat"},
                    {"role": "assistant", "variants": [{"content": XSS}]},
                ],
            }
        ],
    }
    page.set_input_files(
        "#import", files=[{"name": "c.json", "mimeType": "application/json", "buffer": json.dumps(exported).encode()}]
    )
    expect(page.locator("#messages .msg.assistant .body")).to_contain_text("<script>window.pwned = 1</script>")
    assert page.locator("#messages img, #messages script").count() == 0
    assert page.evaluate("window.pwned") is None
    assert not any(urlsplit(u).path == "/x" for u in page.requests)


def test_a_json_schema_in_the_panel_shapes_the_answer(page):
    set_param(page, "max_new_tokens", 60)
    page.fill("#param-json_schema", "{not json")
    expect(page.locator("#param-json_schema")).to_have_class(re.compile("invalid"))  # marked, and not sent
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 15}}, "required": ["city"]}
    page.fill("#param-json_schema", json.dumps(schema))
    expect(page.locator("#param-json_schema")).not_to_have_class(re.compile("invalid"))
    send(page, "Name a city.")
    wait_answered(page)
    answer = stored_conversations(page)[0]["messages"][1]["variants"][0]["content"]
    assert isinstance(json.loads(answer)["city"], str)


def test_tool_calls_show_as_calls_and_a_reply_is_their_result(page):
    set_param(page, "max_new_tokens", 60)
    page.fill("#param-tools", json.dumps([CITY_WEATHER]))
    page.select_option("#param-tool_choice", "required")
    send(page, "What is the weather like in Paris?")
    wait_answered(page)
    call = page.locator(".msg.assistant .calls .call").first
    expect(call.locator(".name")).to_have_text("get_weather")
    assert isinstance(json.loads(call.locator(".arguments").inner_text())["city"], str)
    assert "called functions" in page.locator(".msg.assistant .stats").first.inner_text()
    assert page.get_attribute("#message-input", "placeholder") == "The result of get_weather…"
    page.select_option("#param-tool_choice", "none")
    send(page, "It is 22 degrees and sunny.")
    expect(page.locator(".msg.tool")).to_contain_text("Result of get_weather")
    wait_answered(page)
    messages = stored_conversations(page)[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["tool_call_id"] == messages[1]["variants"][0]["tool_calls"][0]["id"]
    assert messages[3]["variants"][0]["content"].strip() and not messages[3]["variants"][0].get("tool_calls")


def test_server_errors_are_shown_in_its_words(page):
    set_param(page, "top_p", 5)
    send(page, "Hello")
    error = page.locator(".msg.assistant .error")
    expect(error).to_contain_text("top_p: must be <= 1.0, got 5.0", timeout=30_000)


def test_no_request_leaves_the_server(page, server):
    set_param(page, "max_new_tokens", 4)
    page.check("#param-logprobs")
    send(page, "Hi")
    wait_answered(page)
    page.click("[data-tab=completion]")
    page.fill("#prompt", "Once upon a time")
    page.click("#generate")
    expect(page.locator("#completion-out .stats").first).to_be_visible(timeout=60_000)
    for tab in page.locator("[role=tab]:visible").all():
        tab.click()
    hosts = {urlsplit(u).netloc for u in page.requests if urlsplit(u).scheme in ("http", "https")}
    assert hosts == {urlsplit(server.url).netloc}, page.requests
    assert any(u.endswith("/v1/chat/completions") for u in page.requests)
    assert any(u.endswith("/v1/completions") for u in page.requests)


def test_the_picker_lists_the_served_models_and_the_chat_answers_with_the_one_picked(page, server):
    picker = page.locator("#model-picker")
    expect(picker.locator("option")).to_have_text([f"{DEFAULT} · loaded", re.compile(f"^{TINY} · ")])
    page.select_option("#model-picker", TINY)
    set_param(page, "max_new_tokens", 4)
    send(page, "Hi")
    wait_answered(page)
    expect(page.locator(".msg.assistant .stats").last).to_contain_text(TINY)  # the model that answered
    expect(picker.locator("option").nth(1)).to_have_text(f"{TINY} · loaded")  # loaded for this answer
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(picker).to_have_value(TINY)  # the choice is kept
    page.select_option("#model-picker", DEFAULT)


def test_compare_streams_one_prompt_through_two_models_together(page):
    set_param(page, "max_new_tokens", 24)
    set_param(page, "temperature", 0)
    page.click("[data-tab=compare]")
    page.select_option("#compare-a", DEFAULT)
    page.select_option("#compare-b", TINY)
    page.fill("#compare-prompt", "Name three colours.")
    # Both answers stream at the same time: the page records a moment when both sides were still streaming.
    page.evaluate("""() => {
        window.bothStreaming = false;
        new MutationObserver(() => {
            if (document.querySelectorAll('#panel-compare .result.streaming').length === 2) window.bothStreaming = true;
        }).observe(document.body, {subtree: true, childList: true, attributes: true});
    }""")
    page.click("#compare-run")
    expect(page.locator("#compare-run")).to_be_visible(timeout=60_000)
    assert page.evaluate("window.bothStreaming")
    for side, model in (("a", DEFAULT), ("b", TINY)):
        expect(page.locator(f"#compare-title-{side}")).to_contain_text(model)
        stats = page.locator(f"#compare-out-{side} .stats")
        expect(stats).to_contain_text(model)
        expect(stats).to_contain_text("completion")
    assert page.locator("#compare-out-a .body").inner_text().strip()


def test_every_tab_has_no_accessibility_violations(page):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    for tab in page.locator("[role=tab]:visible").all():
        tab.click()
        expect(page.locator(f"#panel-{tab.get_attribute('data-tab')}")).to_be_visible()
        violations = axe.run(page).response["violations"]
        found = {v["id"]: [node["target"] for node in v["nodes"]] for v in violations}
        assert found == {}, (tab.get_attribute("data-tab"), found)


def test_labels_follow_the_browser_language(browser, server):
    page = open_page(browser, server.url, locale="pt-BR")
    try:
        expect(page.locator("[data-tab=chat]")).to_have_text("Conversa")
        expect(page.locator("#send")).to_have_text("Enviar")
        assert page.evaluate("document.documentElement.lang") == "pt-BR"
    finally:
        page.context.close()


def test_phone_width_keeps_the_chat_usable(browser, server):
    page = open_page(browser, server.url, width=390, height=844)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
        expect(page.locator("#message-input")).to_be_visible()
        expect(page.locator("#send")).to_be_visible()
        assert page.evaluate("document.querySelector('#settings').open") is False  # folded away on a phone
    finally:
        page.context.close()


def test_api_key_is_asked_for_on_401(browser):
    keyed = Server("--slots", "1", "--threads", "1", "--api-key", "sesame")
    try:
        page = open_page(browser, keyed.url)
        page.fill("#param-max_new_tokens", "4")
        send(page, "Hi")
        expect(page.locator("#key-dialog")).to_be_visible()
        expect(page.locator("#key-reason")).to_contain_text("missing API key")
        page.fill("#key-input", "sesame")
        page.click("#key-dialog button[value=save]")
        wait_answered(page)
        assert page.locator(".msg.assistant .error").count() == 0
        assert page.evaluate("localStorage.getItem('pocketlm.apiKey')") == "sesame"
        page.context.close()
    finally:
        keyed.stop()


# --------------------------------------------------------------------------- the task tabs
# Each tab is on the page only when the server has its endpoint (read from /openapi.json at start-up):
# without it the tab stays hidden; with it the tab must produce its result.


def has_path(server, path: str) -> bool:
    return path in httpx.get(server.url + "/openapi.json", timeout=30).json()["paths"]


def open_tab(page, server, name: str, path: str) -> bool:
    tab = page.locator(f"[role=tab][data-tab={name}]")
    if not has_path(server, path):
        expect(tab).to_be_hidden()
        return False
    tab.click()
    expect(page.locator(f"#panel-{name}")).to_be_visible()
    return True


def test_inspect_tab(page, server):
    if not open_tab(page, server, "inspect", "/v1/inspect/tokens"):
        return
    page.fill("#inspect-text", "I read a good novel.")
    page.click("#inspect-tokens-run")
    pieces = page.locator("#inspect-tokens .piece")
    expect(pieces.first).to_be_visible(timeout=60_000)
    assert "".join(p.split("\n")[0] for p in pieces.all_inner_texts()).replace("␣", " ") == "I read a good novel."
    page.click("#inspect-attention-run")
    expect(page.locator("#inspect-attention canvas")).to_be_visible(timeout=120_000)
    page.click("#inspect-next-run")
    after = page.locator("#inspect-after")
    expect(after.locator(".bars code").first).to_be_visible(timeout=120_000)
    kept_before = after.locator("h4").inner_text()
    page.fill("#inspect-top_k", "1")  # a range input: fill sets it and fires input, as dragging does
    expect(after.locator("h4")).to_contain_text("· 1 ", timeout=60_000)  # the view re-asked: one token kept
    assert kept_before != after.locator("h4").inner_text()


def test_translate_tab(page, server):
    if not open_tab(page, server, "translate", "/translate"):
        return
    page.select_option("#translate-source", "en")
    page.select_option("#translate-target", page.locator("#translate-target option[value^=pt]").get_attribute("value"))
    page.fill("#translate-text", "The cat sleeps on the sofa.")
    page.click("#translate-run")
    expect(page.locator("#translate-out")).to_contain_text("gato", timeout=120_000)


def test_speak_tab(page, server):
    if not open_tab(page, server, "speak", "/v1/audio/speech"):
        return
    page.select_option("#speak-format", "wav")
    page.fill("#speak-text", "Hello from pocketlm.")
    page.click("#speak-run")
    audio = page.locator("#speak-out audio")
    expect(audio).to_be_visible(timeout=120_000)
    duration = page.evaluate(
        "() => new Promise((done) => {\n"
        "        const audio = document.querySelector('#speak-out audio');\n"
        "        if (audio.readyState >= 1) done(audio.duration); "
        "else audio.onloadedmetadata = () => done(audio.duration); })"
    )
    assert 0.5 < duration < 10  # the browser decoded real speech, a second or two long
    assert page.locator("#speak-out a[download]").get_attribute("href").startswith("blob:")


def test_describe_tab_is_hidden_without_a_caption_model(page, server):
    # This server has no captioning model: the describe route is not served, so the page offers no tab for it.
    assert not open_tab(page, server, "describe", "/v1/pipelines/describe")


# The page's microphone, played by the test: getUserMedia answers with a WebAudio stream, and each recording
# starts the speech the test chose last (``speak``) from its beginning, once, as a person would say it. (A fake
# capture device would loop one file from wherever it happens to be when a recording starts; a clip that begins
# mid-sentence is sometimes heard as nothing at all, and the Portuguese turn needs Portuguese speech.)
MICROPHONE = """
(() => {
  let context, destination, source, speech;
  const stream = () => {
    context ||= new AudioContext();
    destination ||= context.createMediaStreamDestination();
    return destination.stream;
  };
  navigator.mediaDevices.getUserMedia = async () => stream();
  window.testSpeech = async (base64) => {
    stream();
    speech = await context.decodeAudioData(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)).buffer);
  };
  const start = MediaRecorder.prototype.start;
  MediaRecorder.prototype.start = function (...args) {
    source?.stop();
    source = new AudioBufferSourceNode(context, { buffer: speech });
    source.connect(destination);
    source.start();
    return start.apply(this, args);
  };
})();
"""


def speak(page, server, text: str, voice: str) -> float:
    """What the microphone says from the next recording on: ``text`` in ``voice``, then a second of silence.
    Its length in seconds."""
    import base64
    import io
    import wave

    speech = httpx.post(
        server.url + "/v1/audio/speech", json={"input": text, "voice": voice, "response_format": "wav"}, timeout=120
    )
    with wave.open(io.BytesIO(speech.content)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    frames += b"\0\0" * rate
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    page.evaluate("(b) => window.testSpeech(b)", base64.b64encode(out.getvalue()).decode())
    return len(frames) / 2 / rate


def test_talk_tab_hears_the_microphone_answers_in_text_and_speaks(playwright, server):
    if not has_path(server, "/v1/audio/transcriptions"):
        return
    # a browser of its own: the answers play without a click on them
    browser = playwright.chromium.launch(
        executable_path=chromium(), args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
    )
    try:
        page = open_page(browser, server.url, init_script=MICROPHONE)
        set_param(page, "max_new_tokens", 24)
        assert open_tab(page, server, "talk", "/v1/audio/transcriptions")
        hold = page.locator("#talk-hold")
        seconds = speak(page, server, "Please tell me a short story about a cat.", "joe")
        hold.hover()
        page.mouse.down()
        expect(hold).to_have_class(re.compile("recording"))
        page.wait_for_timeout(int(seconds * 1000) + 500)  # the whole question
        page.mouse.up()
        said = page.locator("#talk-log .msg.user .body")
        expect(said).to_contain_text(re.compile("story", re.I), timeout=120_000)
        expect(said).to_contain_text(re.compile("cat", re.I))
        answer = page.locator("#talk-log .msg.assistant")
        # the language heard picks the answer's language (and its voice)
        assert page.locator("#talk-log .msg.user").get_attribute("lang") == answer.get_attribute("lang") == "en"
        expect(answer.locator("audio")).to_be_attached(timeout=120_000)
        assert answer.locator(".body").inner_text().strip()
        page.wait_for_function(  # the answer is spoken: the audio element plays
            "() => { const a = document.querySelector('#talk-log audio'); return a && a.currentTime > 0; }",
            timeout=60_000,
        )
        hosts = {urlsplit(u).netloc for u in page.requests if urlsplit(u).scheme in ("http", "https")}
        assert hosts == {urlsplit(server.url).netloc}, page.requests
        asked = [urlsplit(u).path for u in page.requests]
        assert {"/v1/audio/transcriptions", "/v1/chat/completions", "/v1/audio/speech"} <= set(asked)
        assert "/translate" not in asked  # English goes to the model as it is

        # Said to be Portuguese: heard as Portuguese, through /translate both ways, spoken by joe-pt-br
        page.select_option("#talk-language", "pt")
        seconds = speak(page, server, "Por favor, me conte uma história curta sobre um gato.", "joe-pt-br")
        hold.hover()
        page.mouse.down()
        page.wait_for_timeout(int(seconds * 1000) + 500)
        page.mouse.up()
        expect(page.locator("#talk-log .msg.user")).to_have_count(2, timeout=120_000)
        assert page.locator("#talk-log .msg.user").nth(1).get_attribute("lang") == "pt-BR"
        page.wait_for_function(
            "() => { const a = document.querySelectorAll('#talk-log audio');"
            " return a.length == 2 && a[1].currentTime > 0; }",
            timeout=120_000,
        )
        voices = [json.loads(body)["voice"] for path, body in page.bodies if path == "/v1/audio/speech"]
        translated = [json.loads(body) for path, body in page.bodies if path == "/translate"]
        assert voices == ["joe", "joe-pt-br"]
        assert [(t["source"], t["target"]) for t in translated] == [("pt", "en"), ("en", "pt")]
        assert page.errors == []
    finally:
        browser.close()
