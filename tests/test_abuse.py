"""Connection abuse and the API key, against a real `pocketlm serve`: nobody blocks the others.

Each abuse case is followed by a normal request that must be answered within a
bound; the limits are the `serve` settings (short here so the tests are quick).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import httpx
import pytest

from api_server import Server, assert_openai_error

KEY = "sk-abuse-test-8f3c2a"
LIMITS = {"header_timeout": 2, "body_timeout": 2, "send_timeout": 2}
BOUND = 30  # seconds a normal request may take on a busy 2-core machine, abuse or not


@pytest.fixture(scope="module")
def server():
    s = Server(
        "--slots",
        "2",
        "--api-key",
        KEY,
        "--header-timeout",
        "2",
        "--body-timeout",
        "2",
        "--send-timeout",
        "2",
        "--http-keep-alive",
        "1",
        "--max-connections",
        "48",
        "--send-buffer-bytes",
        "16384",
        "--max-header-bytes",
        "4096",
    )
    yield s
    s.stop()


def auth() -> dict:
    return {"Authorization": f"Bearer {KEY}"}


def assert_answers(server: Server, bound: float = BOUND) -> None:
    """A normal request is answered (200) within ``bound`` seconds; 503 from the connection limit is retried."""
    deadline = time.monotonic() + bound
    while True:
        try:
            r = httpx.post(
                f"{server.url}/v1/completions",
                headers=auth(),
                timeout=bound,
                json={"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0},
            )
            if r.status_code == 200:
                assert r.json()["usage"]["completion_tokens"] == 2
                return
            assert r.status_code == 503, r.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "a normal request was not answered in time"
        time.sleep(0.2)


def rss_mb(server: Server) -> float:
    for line in open(f"/proc/{server.process.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_until_closed(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it is still open after ``within`` s."""
    data, deadline = b"", time.monotonic() + within
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.1)
        if ready:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk
    raise AssertionError(f"the server kept the connection open for {within} s")


def in_background(server: Server) -> threading.Thread:
    """A normal request running while the abuse goes on; join() re-raises nothing, so keep the result."""
    result = {}

    def run():
        started = time.monotonic()
        try:
            assert_answers(server)
            result["seconds"] = time.monotonic() - started
        except BaseException as e:  # reported by the test through the thread's result
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.result = result
    thread.start()
    return thread


def joined(thread: threading.Thread) -> float:
    thread.join()
    assert "error" not in thread.result, thread.result.get("error")
    return thread.result["seconds"]


# ---------------------------------------------------------------- slow clients


def test_trickled_headers_are_cut_off_at_the_header_timeout(server):
    sock = raw(server)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    other = in_background(server)
    started, reply = time.monotonic(), b""
    while time.monotonic() - started < LIMITS["header_timeout"] + 10:
        try:
            sock.sendall(b"a")  # one byte every 0.2 s: the connection never goes quiet
        except OSError:
            break
        if select.select([sock], [], [], 0.2)[0]:
            reply = read_until_closed(sock, 5)
            break
    elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert LIMITS["header_timeout"] - 0.5 < elapsed < LIMITS["header_timeout"] + 5
    joined(other)


def test_a_connection_that_sends_nothing_is_closed(server):
    sock = raw(server)
    started = time.monotonic()
    assert read_until_closed(sock, LIMITS["header_timeout"] + 5) == b""  # closed without a word: nothing was asked
    assert time.monotonic() - started > LIMITS["header_timeout"] - 0.5


def test_a_trickled_body_gets_408(server):
    sock = raw(server)
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + KEY.encode() + b'\r\nContent-Length: 1000\r\n\r\n{"prompt": "'
    )
    other = in_background(server)
    started, reply = time.monotonic(), b""
    while time.monotonic() - started < LIMITS["body_timeout"] + 10:
        try:
            sock.sendall(b"a")
        except OSError:
            break
        if select.select([sock], [], [], 0.2)[0]:
            reply = read_until_closed(sock, 5)
            break
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout" and "--body-timeout" in error["message"]
    assert time.monotonic() - started < LIMITS["body_timeout"] + 5
    joined(other)


def test_many_idle_connections_are_reaped_and_others_served(server):
    before = rss_mb(server)
    keep_alive = []
    for _ in range(8):  # a finished request each, then silence on a kept-alive connection
        client = httpx.Client(base_url=server.url, headers=auth())
        assert client.get("/v1/models").status_code == 200
        keep_alive.append(client)
    idle = [raw(server) for _ in range(120)]  # more than --max-connections 48: the flood holds them all for a while
    started = time.monotonic()
    assert_answers(server, bound=LIMITS["header_timeout"] + BOUND)
    for sock in idle:
        read_until_closed(sock, LIMITS["header_timeout"] + 10)
    assert time.monotonic() - started < LIMITS["header_timeout"] + BOUND
    for client in keep_alive:  # the server closed them; httpx reconnects transparently
        assert client.get("/v1/models").status_code == 200
        client.close()
    assert rss_mb(server) - before < 50


# ---------------------------------------------------------------- bodies


def test_deeply_nested_json_and_huge_strings(server):
    before = rss_mb(server)
    url = f"{server.url}/v1/completions"
    headers = {**auth(), "Content-Type": "application/json"}
    for _ in range(5):
        deep = b'{"prompt": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"  # 400 KB, under the 1 MiB cap
        error = assert_openai_error(httpx.post(url, content=deep, headers=headers, timeout=BOUND), 400)
        assert "nested too deeply" in error["message"]
        deep_object = b'{"prompt": "hi", "stream_options": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}"
        assert_openai_error(httpx.post(url, content=deep_object, headers=headers, timeout=BOUND), 400)
        huge = json.dumps({"prompt": "a" * (2 << 20)})
        assert_openai_error(httpx.post(url, content=huge, headers=headers, timeout=BOUND), 413)
        long_prompt = json.dumps(
            {"prompt": "word " * 180_000, "max_tokens": 2}
        )  # 900 KB: fits the cap, not the context
        assert (
            assert_openai_error(httpx.post(url, content=long_prompt, headers=headers, timeout=BOUND), 400, "prompt")[
                "code"
            ]
            == "context_length_exceeded"
        )
    assert_answers(server)
    assert rss_mb(server) - before < 100


@pytest.mark.parametrize(
    "route, field",
    [
        ("/v1/completions", "prompt"),
        ("/v1/chat/completions", "messages"),
        ("/generate", "prompt"),
        ("/tokenize", "text"),
    ],
)
def test_invalid_utf8_and_lone_surrogates_are_400(server, route, field):
    headers = {**auth(), "Content-Type": "application/json"}
    value = '[{"role": "user", "content": "%s"}]' if field == "messages" else '"%s"'
    limit = "max_new_tokens" if route == "/generate" else "max_tokens"
    for text, expected in (("\\ud800 hi", "surrogate"), ("hi \\udfff", "surrogate"), ("\xff\xfe", "UTF-8")):
        body = f'{{"{field}": {value % text}, "{limit}": 2}}'.encode("latin-1")
        error = assert_openai_error(
            httpx.post(f"{server.url}{route}", content=body, headers=headers, timeout=BOUND), 400, "body"
        )
        assert expected in error["message"]
    pair = "caf\\u00e9 \\ud83d\\ude00"  # a real pair: fine
    ok = f'{{"{field}": {value % pair}, "{limit}": 2}}'.encode()
    assert httpx.post(f"{server.url}{route}", content=ok, headers=headers, timeout=BOUND).status_code == 200
    assert_answers(server)


# ---------------------------------------------------------------- a reader that never reads


@pytest.fixture(scope="module")
def fast_server():
    """A tiny random Llama (thousands of tokens/s even on a busy machine), so a stream outruns a small buffer."""
    from tiny_models import tiny_model_dir

    s = Server(
        "--model",
        str(tiny_model_dir("llama")),
        "--slots",
        "3",
        "--n-ctx",
        "4096",
        "--api-key",
        KEY,  # one slot stays free
        "--send-timeout",
        "2",
        "--send-buffer-bytes",
        "16384",
    )
    yield s
    s.stop()


def test_a_client_that_never_reads_its_stream_is_dropped(fast_server):
    server = fast_server
    before = rss_mb(server)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window it advertises
    sock.connect(("127.0.0.1", server.port))
    body = json.dumps(
        {"prompt": "Once upon a time", "max_tokens": 2000, "n": 2, "ignore_eos": True, "stream": True}
    ).encode()
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    try:
        other = in_background(server)
        deadline = time.monotonic() + 120
        while "read nothing of its response" not in server.log():
            assert time.monotonic() < deadline, "the server kept streaming to a client that reads nothing"
            time.sleep(0.2)
        joined(other)
        while server.metric("pocketlm_running_requests", auth()) != 0:  # the dropped stream freed its slot
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert server.metric("pocketlm_completion_tokens_total", auth()) < 2 * 2000  # cut short, not run to the end
    finally:
        sock.close()
    assert_answers(server)
    assert rss_mb(server) - before < 50


# ---------------------------------------------------------------- keys, docs, CORS


def test_docs_and_metrics_need_the_key(server):
    for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
        assert_openai_error(httpx.get(f"{server.url}{path}"), 401)
        assert httpx.get(f"{server.url}{path}", headers=auth()).status_code == 200, path
    for path in ("/health", "/ready"):
        assert httpx.get(f"{server.url}{path}").status_code == 200


def test_public_docs_flag_opens_only_the_docs():
    s = Server("--api-key", KEY, "--public-docs", "--slots", "1")
    try:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"{s.url}{path}").status_code == 200, path
        assert_openai_error(httpx.get(f"{s.url}/metrics"), 401)
        assert_openai_error(httpx.post(f"{s.url}/generate", json={"prompt": "Hi"}), 401)
    finally:
        s.stop()


def test_cors_is_off_unless_asked(server):
    preflight = httpx.options(
        f"{server.url}/v1/chat/completions",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = httpx.get(f"{server.url}/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_keys_are_never_logged(server):
    wrong = "sk-wrong-d41d8cd98f00"
    httpx.get(f"{server.url}/v1/models", headers=auth())
    httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {wrong}"})
    httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Basic {wrong}"})
    httpx.get(f"{server.url}/v1/models?api_key={wrong}")
    httpx.post(f"{server.url}/v1/completions", headers={"Authorization": f"Bearer {wrong}"}, content=b"{not json")
    httpx.post(f"{server.url}/v1/completions", headers=auth(), json={"prompt": 5, "api_key": KEY})
    log = server.log()
    assert "/v1/models" in log  # the access log is there ...
    assert KEY not in log and wrong not in log  # ... without a key in it


@pytest.mark.parametrize("pieces", [1, 8])
def test_a_request_head_over_max_header_bytes_is_refused_whole_or_in_pieces(server, pieces):
    """--max-header-bytes holds for a head sent in one write as for one sent in pieces: 431, then the connection
    closes; the server goes on answering."""
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nX-Big: {'a' * 8000}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=BOUND) as conn:
        step = -(-len(head) // pieces)
        for start in range(0, len(head), step):
            try:
                conn.sendall(head[start : start + step])
            except OSError:
                break  # closed mid-head: the answer is already there to read
            time.sleep(0.05)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431"), answer[:200]
    assert json.loads(body)["error"]["code"] == "header_too_large"
    assert_answers(server)


def test_a_request_beyond_max_connections_gets_503_with_retry_after_in_openais_shape(server):
    idle = [raw(server) for _ in range(60)]  # more than --max-connections 48, each silent (reaped after 2 s)
    try:
        time.sleep(0.3)  # the server has accepted them all
        r = httpx.get(f"{server.url}/v1/models", headers=auth(), timeout=BOUND)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert assert_openai_error(r, 503)["code"] == "too_many_connections"
    finally:
        for sock in idle:
            sock.close()
    assert_answers(server)
