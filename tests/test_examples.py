"""examples/app.py, the app ``make run`` serves, through the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import TESTS_DIR, HastenProcess, hasten_process

EXAMPLES_DIR = TESTS_DIR.parent / "examples"


@pytest.fixture(scope="module")
def example() -> Iterator[HastenProcess]:
    with hasten_process("app:app", "--app-dir", str(EXAMPLES_DIR), "--port", "0") as running:
        yield running


def test_hello(example: HastenProcess) -> None:
    response = httpx.get(example.url + "/")
    assert response.status_code == 200
    assert response.text == "Hello, world!"


def test_json(example: HastenProcess) -> None:
    assert httpx.get(example.url + "/json").json() == {
        "message": "Hello, world!",
        "server": "hasten",
    }


def test_stream(example: HastenProcess) -> None:
    with httpx.stream("GET", example.url + "/stream") as response:
        lines = list(response.iter_lines())
    assert lines == [f"line {number}" for number in range(10)]


def test_echo(example: HastenProcess) -> None:
    body = b"echo me " * 10_000
    response = httpx.post(example.url + "/echo", content=body)
    assert response.content == body


def test_unknown_path_is_404(example: HastenProcess) -> None:
    assert httpx.get(example.url + "/nope").status_code == 404
