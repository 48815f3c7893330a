"""Real frameworks served through the ``hasten`` CLI and queried with httpx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import hasten_process


@pytest.fixture(params=["fastapi", "starlette"], scope="module")
def framework_client(request: pytest.FixtureRequest) -> Iterator[tuple[str, httpx.Client]]:
    name = request.param
    with (
        hasten_process(f"{name}_app:app", "--port", "0", "--lifespan", "on") as running,
        httpx.Client(base_url=running.url, timeout=10) as client,
    ):
        yield name, client


def test_json_route(framework_client: tuple[str, httpx.Client]) -> None:
    name, client = framework_client
    response = client.get("/json")
    assert response.status_code == 200
    assert response.json() == {"framework": name}


def test_path_and_query_parameters(framework_client: tuple[str, httpx.Client]) -> None:
    _, client = framework_client
    assert client.get("/items/42", params={"q": "blue"}).json() == {"item_id": 42, "q": "blue"}


def test_request_body(framework_client: tuple[str, httpx.Client]) -> None:
    _, client = framework_client
    response = client.post("/items", json={"name": "lamp", "price": 10.0})
    assert response.json() == {"name": "lamp", "price_with_tax": 12.0}


def test_streaming_response(framework_client: tuple[str, httpx.Client]) -> None:
    _, client = framework_client
    with client.stream("GET", "/stream") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert b"".join(response.iter_bytes()) == b"0\n1\n2\n3\n4\n"


def test_lifespan_state_reaches_requests(framework_client: tuple[str, httpx.Client]) -> None:
    _, client = framework_client
    assert client.get("/state").json() == {"greeting": "hello from lifespan"}


def test_not_found(framework_client: tuple[str, httpx.Client]) -> None:
    _, client = framework_client
    assert client.get("/missing").status_code == 404
