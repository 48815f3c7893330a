"""The HTTP scope an app receives, per ASGI spec 2.5, checked through a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hasten.protocols.http1 import connection as http1
from hasten.protocols.http1.connection import server_address
from tests.harness import request, run_server
from tests.protocols.http1_apps import recorder


def scope_of(raw: bytes, **settings: Any) -> dict[str, Any]:
    seen, app = recorder()
    with run_server(app, **settings) as server, server.connect() as client:
        client.send(raw)
        assert client.read_response().status == 200
    assert len(seen) == 1
    return seen[0]  # type: ignore[no-any-return]


def test_scope_has_type_asgi_versions_and_http_version() -> None:
    scope = scope_of(request())
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "http"
    assert scope["extensions"] == {"http.response.pathsend": {}, "http.response.zerocopysend": {}}


def test_scope_has_the_exact_set_of_keys() -> None:
    scope = scope_of(request())
    assert set(scope) == {
        "type",
        "asgi",
        "http_version",
        "method",
        "scheme",
        "path",
        "raw_path",
        "query_string",
        "root_path",
        "headers",
        "client",
        "server",
        "state",
        "extensions",
    }


def test_scope_method_is_the_request_method() -> None:
    assert scope_of(request("PATCH", body=b"x"))["method"] == "PATCH"


def test_scope_path_is_percent_decoded_utf8_and_raw_path_is_not() -> None:
    scope = scope_of(request(path="/caf%C3%A9/a%20b%2Fc?x=%C3%A9&y=1"))
    assert scope["path"] == "/café/a b/c"
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b%2Fc"
    assert scope["query_string"] == b"x=%C3%A9&y=1"


def test_scope_query_string_is_empty_bytes_without_query() -> None:
    scope = scope_of(request(path="/plain"))
    assert scope["query_string"] == b""
    assert scope["raw_path"] == b"/plain"


def test_scope_absolute_form_target_gives_path_and_query() -> None:
    scope = scope_of(request(path="http://example.com/abs/path?q=1"))
    assert scope["path"] == "/abs/path"
    assert scope["query_string"] == b"q=1"


def test_scope_root_path_is_prefixed_to_path_and_raw_path() -> None:
    scope = scope_of(request(path="/items"), root_path="/api")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items"
    assert scope["raw_path"] == b"/api/items"


def test_scope_headers_are_lowercased_bytes_in_order_with_duplicates() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Multi: 1\r\nAccept: */*\r\n"
        b"x-multi: 2\r\nContent-TYPE: text/plain\r\n\r\n"
    )
    scope = scope_of(raw)
    assert scope["headers"] == [
        (b"host", b"t"),
        (b"x-multi", b"1"),
        (b"accept", b"*/*"),
        (b"x-multi", b"2"),
        (b"content-type", b"text/plain"),
    ]


def test_scope_client_and_server_are_host_port_tuples() -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(request())
        client.read_response()
        local = client.sock.getsockname()
    scope = seen[0]
    assert scope["client"] == (local[0], local[1])
    assert scope["server"] == (server.host, server.port)


def test_scope_server_for_a_unix_socket_is_path_and_none(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    scope = scope_of(request(), uds=path)
    assert scope["server"] == (path, None)
    assert scope["client"] is None


def test_scope_state_is_a_per_request_copy_of_the_lifespan_state() -> None:
    states: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            scope["state"]["shared"] = "from startup"
            scope["state"]["counter"] = 0
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
            return
        states.append(dict(scope["state"]))
        scope["state"]["counter"] += 1
        scope["state"]["leak"] = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with run_server(app, lifespan="on") as server, server.connect() as client:
        client.send(request() + request())
        client.read_response()
        client.read_response()
    assert states == [{"shared": "from startup", "counter": 0}] * 2


def test_scope_headers_are_not_shared_between_requests() -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(request(headers={"X-One": "1"}) + request(headers={"X-Two": "2"}))
        client.read_response()
        client.read_response()
    assert (b"x-one", b"1") in seen[0]["headers"]
    assert (b"x-one", b"1") not in seen[1]["headers"]
    assert (b"x-two", b"2") in seen[1]["headers"]


def test_trailers_and_headerless_requests_leave_no_fields_to_later_requests() -> None:
    # Between requests a connection holds shared empty lists for its fields and its queue
    # of requests, not lists of its own: nothing may ever be added to them.
    seen, app = recorder()
    with_trailer = (
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\nX-Trailer: late\r\n\r\n"
    )
    with run_server(app) as server:
        with server.connect() as client:
            client.send(with_trailer + b"GET / HTTP/1.0\r\n\r\n")
            client.read_response()
            client.read_response()
        with server.connect() as client:
            client.send(request(headers={"X-Own": "1"}))
            client.read_response()
    assert seen[0]["headers"] == [(b"host", b"test"), (b"transfer-encoding", b"chunked")]
    assert seen[1]["headers"] == []
    assert seen[2]["headers"] == [(b"host", b"test"), (b"x-own", b"1")]
    assert http1.NO_FIELDS == []
    assert http1.NO_REQUESTS == []


def test_server_address_is_one_tuple_per_listening_address() -> None:
    # Shared by every connection of a listener: it costs idle connections nothing.
    first = server_address(("127.0.0.1", 8000))
    assert first == ("127.0.0.1", 8000)
    assert server_address(("127.0.0.1", 8000)) is first
    assert server_address(("::1", 8000, 0, 0)) == ("::1", 8000)
    assert server_address("/run/app.sock") == ("/run/app.sock", None)
    assert server_address(None) is None
