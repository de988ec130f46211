"""WebhookSink against a real HTTP server this test starts on 127.0.0.1: the token header is sent,
5xx is retried, a timeout is bounded and retried, 4xx is final, and the token never reaches a log
or an error."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from resilience.incidents import Alert, IncidentManager, WebhookSink

TOKEN = "hook-token-5f1c9e"


class Hook:
    """A webhook receiver: answers each POST with the next status of `script` (then 204); a status
    of 0 means hang for `hang_s` before answering 204."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.hang_s = 2.0
        self.seen: list[tuple[dict[str, str], dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = hook.script.pop(0) if hook.script else 204
                if status == 0:
                    time.sleep(hook.hang_s)
                    status = 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/chaos"

    def __enter__(self) -> Hook:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    with Hook() as h:
        yield h


async def test_token_header_is_sent(hook: Hook) -> None:
    await WebhookSink(hook.url, token=TOKEN, token_header="X-Chaosdrill-Token").send(
        Alert(severity="critical", title="db down"))
    headers, body = hook.seen[0]
    assert headers["x-chaosdrill-token"] == TOKEN and body["title"] == "db down"
    await WebhookSink(hook.url, token=TOKEN).send(Alert(severity="info", title="x"))
    assert hook.seen[1][0]["authorization"] == f"Bearer {TOKEN}"


async def test_5xx_is_retried_until_it_succeeds(hook: Hook) -> None:
    hook.script = [500, 503]
    await WebhookSink(hook.url, retries=2, retry_wait=0.01).send(Alert(severity="critical", title="db down"))
    assert len(hook.seen) == 3


async def test_retries_exhausted_raise_and_the_manager_logs_without_the_token(hook: Hook, caplog) -> None:
    hook.script = [500] * 6
    sink = WebhookSink(hook.url, retries=2, retry_wait=0.01, token=TOKEN)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(httpx.HTTPStatusError) as err:
            await sink.send(Alert(severity="critical", title="db down"))
        await IncidentManager([sink]).alert(Alert(severity="critical", title="again"))
    assert len(hook.seen) == 6
    assert "500" in str(err.value) and TOKEN not in str(err.value)
    assert "incident sink" in caplog.text and TOKEN not in caplog.text


async def test_a_4xx_is_final(hook: Hook) -> None:
    hook.script = [401]
    with pytest.raises(httpx.HTTPStatusError):
        await WebhookSink(hook.url, retries=3, retry_wait=0.01).send(Alert(severity="info", title="x"))
    assert len(hook.seen) == 1


async def test_a_hanging_receiver_hits_the_timeout_then_the_retry_succeeds(hook: Hook, caplog) -> None:
    hook.script = [0]  # the first request hangs past the timeout
    with caplog.at_level(logging.DEBUG):
        await WebhookSink(hook.url, timeout=0.2, retries=1, retry_wait=0.01, token=TOKEN).send(
            Alert(severity="critical", title="slow"))
    assert len(hook.seen) == 2
    assert TOKEN not in caplog.text
