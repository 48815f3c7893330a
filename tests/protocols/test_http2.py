"""HTTP/2 against a real hasten: prior knowledge, h2c upgrade, streams, flow control,
trailers, early hints, shutdown — with h2's client state machine, curl, httpx and h2load."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import threading
import time
from typing import Any

import h2.settings
import httpx
import pytest
from h2.errors import ErrorCodes

from tests.harness import run_server
from tests.protocols.context_app import context_reporter
from tests.protocols.h2client import H2Client, ensure_h2load, parse_frames


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the scope (as JSON) and the size of the body it read."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    summary = {
        key: scope[key]
        for key in ("http_version", "method", "scheme", "path", "query_string", "root_path")
    }
    summary["query_string"] = scope["query_string"].decode()
    summary["headers"] = [[name.decode(), value.decode()] for name, value in scope["headers"]]
    summary["extensions"] = sorted(scope["extensions"])
    summary["asgi"] = scope["asgi"]
    summary["body_length"] = len(body)
    summary["body_head"] = body[:16].decode("latin-1")
    payload = json.dumps(summary).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def routes_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/big":
        size = int(scope["query_string"] or b"1048576")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            part = chunk[: size - sent]
            sent += len(part)
            await send({"type": "http.response.body", "body": part, "more_body": sent < size})
        return
    if path == "/trailers":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"trailer", b"x-checksum")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": b"part1", "more_body": True})
        await send({"type": "http.response.body", "body": b"part2"})
        trailers = [] if scope["query_string"] == b"none" else [(b"x-checksum", b"abc")]
        await send({"type": "http.response.trailers", "headers": trailers})
        return
    if path == "/mutate":
        # An app that changes its scope's headers changes nobody else's.
        scope["headers"].append((b"x-added", b"1"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(scope["headers"])})
        return
    if path == "/hints":
        await send(
            {"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload; as=style"]}
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hinted"})
        return
    if path == "/slow":
        await asyncio.sleep(float(scope["query_string"] or b"0.5"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slow done"})
        return
    if path == "/error":
        raise RuntimeError("boom")
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/connection-header":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"Connection", b"keep-alive"), (b"X-Mixed-Case", b"1")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await echo_app(scope, receive, send)


def h2_settings_header(settings: dict[int, int] | None = None) -> str:
    payload = b"".join(
        key.to_bytes(2, "big") + value.to_bytes(4, "big")
        for key, value in (settings or {3: 100}).items()
    )
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def body_json(response: Any) -> dict[str, Any]:
    return json.loads(response.body)


# -- prior knowledge and the scope -------------------------------------------------------------


def test_prior_knowledge_request_gets_an_http2_response() -> None:
    with run_server(echo_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/hello?x=1"))
    assert response.status == 200
    summary = body_json(response)
    assert summary["http_version"] == "2"
    assert summary["method"] == "GET"
    assert summary["scheme"] == "http"
    assert summary["path"] == "/hello"
    assert summary["query_string"] == "x=1"


def test_authority_becomes_the_host_header() -> None:
    with run_server(echo_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/", authority="example.com:8443"))
    assert ["host", "example.com:8443"] in body_json(response)["headers"]


def test_scope_advertises_trailers_and_early_hints() -> None:
    with run_server(echo_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/"))
    extensions = body_json(response)["extensions"]
    assert "http.response.trailers" in extensions
    assert "http.response.early_hint" in extensions


def test_scope_declares_asgi_http_spec_2_5() -> None:
    with run_server(echo_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/"))
    assert body_json(response)["asgi"] == {"version": "3.0", "spec_version": "2.5"}


def test_streams_do_not_inherit_another_streams_context() -> None:
    with (
        run_server(context_reporter) as server,
        H2Client(server.host, server.port).start() as client,
    ):
        bodies = [client.response(client.request(path)).body for path in ("/a", "/b")]
        concurrent = [client.request(path) for path in ("/c", "/d", "/e")]
        bodies += [client.response(stream_id).body for stream_id in concurrent]
    assert bodies == [b"nothing"] * 5


def test_percent_encoded_path_is_decoded_and_root_path_prefixed() -> None:
    with (
        run_server(echo_app, root_path="/api") as server,
        H2Client(server.host, server.port).start() as client,
    ):
        response = client.response(client.request("/a%20b"))
    summary = body_json(response)
    assert summary["path"] == "/api/a b"
    assert summary["root_path"] == "/api"


def test_cookie_crumbs_reach_the_app_as_one_header() -> None:
    with run_server(echo_app) as server, H2Client(server.host, server.port).start() as client:
        stream_id = client.request("/", headers=[("cookie", "a=1"), ("cookie", "b=2")])
        response = client.response(stream_id)
    cookies = [value for name, value in body_json(response)["headers"] if name == "cookie"]
    assert cookies == ["a=1; b=2"]


def test_server_and_date_headers_are_sent() -> None:
    with run_server(echo_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/"))
    assert response.header(b"server") == b"hasten"
    assert response.header(b"date") is not None


def test_connection_specific_response_headers_are_dropped() -> None:
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/connection-header"))
    assert response.status == 200
    assert response.header(b"connection") is None
    assert response.header(b"x-mixed-case") == b"1"


def test_many_requests_share_one_connection() -> None:
    with run_server(echo_app) as server, H2Client(server.host, server.port).start() as client:
        stream_ids = [client.request(f"/n{n}") for n in range(20)]
        paths = [body_json(client.response(stream_id))["path"] for stream_id in stream_ids]
    assert paths == [f"/n{n}" for n in range(20)]


def test_app_exception_answers_500_and_keeps_the_connection() -> None:
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        failed = client.response(client.request("/error"))
        after = client.response(client.request("/"))
    assert failed.status == 500
    assert after.status == 200


def test_no_content_response_ends_with_the_headers() -> None:
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/empty"))
    assert response.status == 204
    assert response.body == b""


# -- bodies and flow control -------------------------------------------------------------------


def test_request_body_larger_than_the_window_is_streamed_to_the_app() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB, 16 stream windows
    with run_server(echo_app) as server, H2Client(server.host, server.port).start() as client:
        stream_id = client.request("/upload", method="POST", end_stream=False)
        client.send_body(stream_id, body)
        response = client.response(stream_id, timeout=15)
    assert body_json(response)["body_length"] == len(body)


def test_response_larger_than_the_client_window_waits_for_window_updates() -> None:
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/big?1048576"), timeout=15)
    assert len(response.body) == 1048576


def test_a_stream_stalled_on_its_window_does_not_block_others() -> None:
    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024}
    with (
        run_server(routes_app) as server,
        H2Client(server.host, server.port, settings=settings).start() as client,
    ):
        stalled = client.request("/big?200000")
        quick = client.request("/quick")
        # The client acknowledges data as it reads it, but never for the stalled stream
        # beyond its small window, so only the quick stream can finish.
        response = client.response(quick)
        assert response.status == 200
        assert not client.responses[stalled].ended


def test_trailers_end_the_stream_after_the_body() -> None:
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/trailers"))
    assert response.body == b"part1part2"
    assert response.trailers == [(b"x-checksum", b"abc")]


def test_repeated_requests_on_a_connection_each_get_their_own_headers() -> None:
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        counts = {client.response(client.request("/mutate")).body for _ in range(3)}
    assert len(counts) == 1


def test_empty_trailers_end_the_stream_with_the_body_whole() -> None:
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/trailers?none"))
        assert (response.body, response.trailers, response.ended) == (b"part1part2", [], True)
        assert client.response(client.request("/")).status == 200


def test_early_hint_is_sent_as_an_informational_103() -> None:
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        response = client.response(client.request("/hints"))
    assert response.status == 200
    assert response.body == b"hinted"
    [hint] = response.informational
    assert (b":status", b"103") in hint
    assert (b"link", b"</style.css>; rel=preload; as=style") in hint


def test_settings_are_advertised() -> None:
    with (
        run_server(echo_app, h2_max_concurrent_streams=7, h2_max_header_list_size=32768) as server,
        H2Client(server.host, server.port).start() as client,
    ):
        client.response(client.request("/"))
        remote = client.conn.remote_settings
    assert remote.max_concurrent_streams == 7
    assert remote.max_header_list_size == 32768
    assert remote.enable_push == 0


# -- h2c upgrade -------------------------------------------------------------------------------


def upgrade_request(body: bytes = b"", settings: str | None = None) -> bytes:
    head = (
        f"POST /up HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        f"Upgrade: h2c\r\nHTTP2-Settings: {settings or h2_settings_header()}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_h2c_upgrade_with_a_body_delivers_it_to_stream_1() -> None:
    with run_server(echo_app) as server:
        raw = server.connect()
        raw.send(upgrade_request(b"hello upgrade"))
        head = raw._read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        client = H2Client(server.host, server.port, sock=raw.sock)
        client.conn.initiate_upgrade_connection()
        client.send_raw(client.conn.data_to_send())
        if raw.buffer:
            for event in client.conn.receive_data(raw.buffer):
                client._record(event)
        response = client.response(1)
        raw.close()
    summary = body_json(response)
    assert summary["http_version"] == "2"
    assert summary["method"] == "POST"
    assert summary["body_length"] == len(b"hello upgrade")
    assert summary["body_head"] == "hello upgrade"
    assert not any(name in ("upgrade", "http2-settings") for name, _ in summary["headers"])


def test_h2c_upgrade_with_bad_settings_is_answered_over_http11() -> None:
    with run_server(echo_app) as server, server.connect() as raw:
        raw.send(upgrade_request(settings="!!!"))
        response = raw.read_response()
    assert response.status == 200
    assert json.loads(response.body)["http_version"] == "1.1"


def test_h2c_upgrade_is_ignored_when_http_is_h1() -> None:
    with run_server(echo_app, http="h1") as server, server.connect() as raw:
        raw.send(upgrade_request(b"abc"))
        response = raw.read_response()
    assert response.status == 200
    assert json.loads(response.body)["body_length"] == 3


def test_prior_knowledge_is_refused_when_http_is_h1() -> None:
    with run_server(echo_app, http="h1") as server, server.connect() as raw:
        raw.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        response = raw.read_response()
    assert response.status in (400, 505)


def test_http_h2_serves_prior_knowledge_only() -> None:
    with run_server(echo_app, http="h2") as server:
        with H2Client(server.host, server.port).start() as client:
            assert client.response(client.request("/")).status == 200
        with server.connect() as raw:
            raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b"HTTP/1.1" not in raw.read_all()


# -- real clients ------------------------------------------------------------------------------


def test_curl_prior_knowledge() -> None:
    with run_server(echo_app) as server:
        result = subprocess.run(
            ["curl", "-s", "--http2-prior-knowledge", f"{server.url}/curl?q=1"],
            capture_output=True,
            timeout=20,
            check=True,
        )
    assert json.loads(result.stdout)["http_version"] == "2"


def test_curl_h2c_upgrade_with_a_body() -> None:
    with run_server(echo_app) as server:
        result = subprocess.run(
            ["curl", "-s", "--http2", "--data-binary", "payload!", f"{server.url}/curl"],
            capture_output=True,
            timeout=20,
            check=True,
        )
    summary = json.loads(result.stdout)
    assert summary["http_version"] == "2"
    assert summary["body_length"] == 8


def test_httpx_http2_prior_knowledge() -> None:
    with (
        run_server(routes_app) as server,
        httpx.Client(http1=False, http2=True, timeout=10) as client,
    ):
        responses = [client.get(f"{server.url}/big?100000") for _ in range(3)]
        posted = client.post(f"{server.url}/echo", content=b"z" * 300000)
    assert all(r.http_version == "HTTP/2" and len(r.content) == 100000 for r in responses)
    assert posted.json()["body_length"] == 300000


@pytest.fixture(scope="session")
def h2load() -> str:
    return ensure_h2load()


def test_h2load_bounded_run_has_no_failed_requests(h2load: str) -> None:
    with run_server(echo_app, access_log=False) as server:
        result = subprocess.run(
            [h2load, "-n", "2000", "-c", "4", "-m", "16", f"{server.url}/load"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    assert "2000 succeeded, 0 failed" in result.stdout, result.stdout


# -- shutdown and idleness ---------------------------------------------------------------------


def test_graceful_shutdown_sends_goaway_and_lets_the_stream_finish() -> None:
    # h2's client machine stops at a GOAWAY, so the frames after it are read raw.
    with run_server(routes_app) as server, H2Client(server.host, server.port).start() as client:
        stream_id = client.request("/slow?0.5")
        state = server.server.state
        assert state is not None
        deadline = time.monotonic() + 5
        while not state.tasks and time.monotonic() < deadline:
            time.sleep(0.01)  # the request is in flight before the shutdown starts
        stopper = threading.Thread(target=setattr, args=(server.server, "should_exit", True))
        stopper.start()
        raw = b""
        client.sock.settimeout(10)
        while chunk := client.sock.recv(65536):
            raw += chunk
        stopper.join()
    frames = parse_frames(raw)
    kinds = [type(frame).__name__ for frame in frames]
    goaway = frames[kinds.index("GoAwayFrame")]
    assert goaway.error_code == 0
    assert goaway.last_stream_id == stream_id
    assert kinds.index("GoAwayFrame") < kinds.index("DataFrame")
    data = [frame for frame in frames if type(frame).__name__ == "DataFrame"]
    assert b"".join(frame.data for frame in data) == b"slow done"
    assert "END_STREAM" in data[-1].flags


def test_idle_connection_is_closed_after_keep_alive_timeout() -> None:
    with (
        run_server(echo_app, timeout_keep_alive=0.3) as server,
        H2Client(server.host, server.port).start() as client,
    ):
        client.response(client.request("/"))
        assert client.goaway_code(timeout=5) == 0


# -- limits and app mistakes -------------------------------------------------------------------


async def wrong_length_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
    )
    await send(
        {"type": "http.response.body", "body": b"short", "more_body": scope["path"] == "/stream"}
    )
    if scope["path"] == "/stream":
        await send({"type": "http.response.body", "body": b""})


def test_body_shorter_than_content_length_is_never_a_complete_response() -> None:
    with (
        run_server(wrong_length_app) as server,
        H2Client(server.host, server.port).start() as client,
    ):
        whole = client.response(client.request("/"))
        streamed = client.response(client.request("/stream"))
    assert whole.status == 500  # nothing was sent yet
    assert streamed.reset_code == ErrorCodes.INTERNAL_ERROR  # the head was already out
    assert b"short" in streamed.body


def test_declared_body_over_the_limit_gets_413() -> None:
    with (
        run_server(echo_app, limit_request_body=100) as server,
        H2Client(server.host, server.port).start() as client,
    ):
        stream_id = client.request(
            "/", method="POST", headers=[("content-length", "1000")], end_stream=False
        )
        response = client.response(stream_id)
    assert response.status == 413


def test_streamed_body_over_the_limit_gets_413() -> None:
    with (
        run_server(echo_app, limit_request_body=1000) as server,
        H2Client(server.host, server.port).start() as client,
    ):
        stream_id = client.request("/", method="POST", end_stream=False)
        client.send_body(stream_id, b"x" * 5000, end_stream=False)
        response = client.response(stream_id)
        after = client.response(client.request("/"))
    assert response.status == 413
    assert after.status == 200


def test_h2c_upgrade_keeps_the_root_path_once() -> None:
    with run_server(echo_app, root_path="/api") as server:
        result = subprocess.run(
            ["curl", "-s", "--http2", f"{server.url}/x"],
            capture_output=True,
            timeout=20,
            check=True,
        )
    summary = json.loads(result.stdout)
    assert summary["http_version"] == "2"
    assert summary["path"] == "/api/x"
