"""examples/chat.py in a real browser: two pages of headless Chromium join the chat served
by ``hasten``; a message typed in one appears in both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import TESTS_DIR, HastenProcess, hasten_process

EXAMPLES_DIR = TESTS_DIR.parent / "examples"


@pytest.fixture
def chat_server() -> Iterator[HastenProcess]:
    with hasten_process("chat:app", "--app-dir", str(EXAMPLES_DIR), "--port", "0") as running:
        yield running


def test_message_sent_in_one_page_appears_in_another(
    chromium: Any, chat_server: HastenProcess
) -> None:
    context = chromium.new_context()
    try:
        alice, bob = context.new_page(), context.new_page()
        for page in (alice, bob):
            page.goto(chat_server.url + "/")
            page.wait_for_selector("#status:text('connected')", timeout=10_000)
        alice.fill("#name", "alice")
        alice.fill("#text", "hello from hasten")
        alice.click("button")
        for page in (bob, alice):
            page.wait_for_selector("#log li:text('alice: hello from hasten')", timeout=10_000)
    finally:
        context.close()
