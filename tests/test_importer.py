"""Loading the app: import strings, factories, and ASGI 2 apps adapted to ASGI 3."""

from __future__ import annotations

from typing import Any

import pytest

from hasten.importer import AppLoadError, ASGI2Adapter, is_asgi2, load_app
from tests.harness import request, run_server


async def plain_text(send: Any, text: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": text})


class ClassBasedASGI2:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        await plain_text(send, b"class-based asgi2 " + self.scope["path"].encode())


def closure_based_asgi2(scope: dict[str, Any]) -> Any:
    async def instance(receive: Any, send: Any) -> None:
        await plain_text(send, b"closure-based asgi2 " + scope["path"].encode())

    return instance


class ASGI3Instance:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await plain_text(send, b"asgi3 instance")


class ASGI3Class:
    """An ASGI 3 app as a class: instances are awaitable."""

    def __init__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope, self.send = scope, send

    def __await__(self) -> Any:
        return self.run().__await__()

    async def run(self) -> None:
        if self.scope["type"] == "http":
            await plain_text(self.send, b"asgi3 class")


def sync_wrapper_around_asgi3(scope: dict[str, Any], receive: Any, send: Any) -> Any:
    return ASGI3Instance()(scope, receive, send)


def get_body(app: Any, path: str = "/x") -> bytes:
    with run_server(app, lifespan="off") as server, server.connect() as client:
        client.send(request("GET", path))
        return client.read_response().body


def test_class_based_asgi2_app_is_adapted_and_served() -> None:
    assert get_body(ClassBasedASGI2) == b"class-based asgi2 /x"


def test_closure_based_asgi2_app_is_adapted_and_served() -> None:
    assert get_body(closure_based_asgi2) == b"closure-based asgi2 /x"


@pytest.mark.parametrize(
    ("app", "body"),
    [
        (ASGI3Instance(), b"asgi3 instance"),
        (ASGI3Class, b"asgi3 class"),
        (sync_wrapper_around_asgi3, b"asgi3 instance"),
    ],
    ids=["instance", "awaitable-class", "sync-function-of-three"],
)
def test_asgi3_apps_are_not_mistaken_for_asgi2(app: Any, body: bytes) -> None:
    assert not is_asgi2(app)
    assert not isinstance(load_app(app), ASGI2Adapter)
    assert get_body(app) == body


def test_asgi2_apps_are_wrapped_by_load_app() -> None:
    assert isinstance(load_app(ClassBasedASGI2), ASGI2Adapter)
    assert isinstance(load_app(closure_based_asgi2), ASGI2Adapter)


def test_dotted_attribute_import_string_is_resolved() -> None:
    loaded = load_app("cli_target:holder.inner.app")
    import cli_target

    assert loaded is cli_target.app


@pytest.mark.parametrize(
    ("import_string", "message"),
    [
        ("cli_target", "must be in format"),
        (":app", "must be in format"),
        ("cli_target:", "must be in format"),
        ("no_such_module_xyz:app", 'Could not import module "no_such_module_xyz"'),
        ("cli_target:holder.missing", 'Attribute "holder.missing" not found'),
        ("cli_import_error:app", "No module named 'hasten_test_missing_dependency'"),
        ("cli_import_error_prefix:app", "No module named 'cli_import'"),
        ("cli_target:not_an_app", "not callable"),
    ],
)
def test_load_errors_say_what_is_wrong_in_one_line(import_string: str, message: str) -> None:
    with pytest.raises(AppLoadError) as caught:
        load_app(import_string)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_factory_result_is_the_app() -> None:
    import cli_target

    assert load_app("cli_target:make_app", factory=True) is cli_target.app


def test_factory_exception_becomes_a_load_error() -> None:
    with pytest.raises(AppLoadError, match="RuntimeError: the factory is broken"):
        load_app("cli_target:broken_factory", factory=True)
