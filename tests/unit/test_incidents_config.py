"""[incidents] in chaosdrill.toml: sinks validated (loopback webhooks, fields of their kind), the
token a secret (never dumped, never in an error, never in the app's argv), handed to the app in an
owner-only file that builds the same sinks."""

from __future__ import annotations

import stat

import pytest

from harness.app.sinks import build_sinks, read_spec
from harness.config import parse_config
from harness.env.app_process import AppProcess
from harness.errors import ConfigError
from resilience.incidents import JsonlSink, LogSink, WebhookSink

TOKEN = "s3cr3t-token-value"
HOOK = {"kind": "webhook", "url": "http://127.0.0.1:9000/hook", "token": TOKEN, "header": "X-Token",
        "retries": 3, "timeout": "500ms"}


def incidents(**sinks):
    return parse_config({"incidents": {"sinks": sinks}}).incidents


def test_default_is_no_extra_sink() -> None:
    assert parse_config({}).incidents.sinks == {} and build_sinks(parse_config({}).incidents.spec()) == []


def test_sinks_are_built_in_order(tmp_path) -> None:
    cfg = incidents(log={"kind": "log"}, file={"kind": "jsonl", "path": str(tmp_path / "i.jsonl")}, hook=HOOK)
    log, jsonl, hook = build_sinks(cfg.spec())
    assert isinstance(log, LogSink) and isinstance(jsonl, JsonlSink) and isinstance(hook, WebhookSink)
    assert (hook.timeout, hook.retries, hook.token_header) == (0.5, 3, "X-Token")
    assert hook.token.get_secret_value() == TOKEN and TOKEN not in repr(hook)


@pytest.mark.parametrize(("sink", "message"), [
    ({"kind": "webhook", "url": "http://192.0.2.10/hook"}, "incidents.sinks.s.url: url host '192.0.2.10' is not loopback"),
    ({"kind": "webhook"}, "incidents.sinks.s: url: required for a webhook sink"),
    ({"kind": "jsonl"}, "incidents.sinks.s: path: required for a jsonl sink"),
    ({"kind": "log", "url": "http://127.0.0.1/x"}, "incidents.sinks.s: url, token: only for a webhook sink"),
    ({"kind": "webhook", "url": "http://127.0.0.1/x", "retries": 11}, "incidents.sinks.s.retries:"),
    ({"kind": "smtp"}, "incidents.sinks.s.kind: must be 'log', 'jsonl' or 'webhook'"),
    ({"kind": "log", "tokn": "x"}, "incidents.sinks.s.tokn: unknown key; allowed: kind, path, url"),
])
def test_bad_sinks_are_refused_naming_the_key(sink, message) -> None:
    with pytest.raises(ConfigError, match=r"^chaosdrill\.toml: ") as err:
        incidents(s=sink)
    assert message in str(err.value)


def test_the_token_is_a_secret(monkeypatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    cfg = parse_config({"incidents": {"sinks": {"h": {**HOOK, "token": "env:HOOK_TOKEN"}}}})
    assert cfg.incidents.sinks["h"].token.get_secret_value() == TOKEN
    assert TOKEN not in str(cfg.model_dump(mode="json")) and TOKEN not in repr(cfg)
    monkeypatch.delenv("HOOK_TOKEN")
    with pytest.raises(ConfigError, match="HOOK_TOKEN is not set"):
        parse_config({"incidents": {"sinks": {"h": {**HOOK, "token": "env:HOOK_TOKEN"}}}})


def test_the_app_gets_the_sinks_in_an_owner_only_file_never_in_argv(tmp_path) -> None:
    app = AppProcess(tmp_path / "app", port=1, pg_dsn="postgresql://postgres@127.0.0.1:5/postgres",
                     redis_url="redis://127.0.0.1:6/0", incidents=incidents(hook=HOOK))
    argv = app.argv()
    assert TOKEN not in " ".join(argv)
    path = argv[argv.index("--incidents") + 1]
    assert stat.S_IMODE((tmp_path / "app" / "incidents.json").stat().st_mode) == 0o600
    assert read_spec(path)["sinks"][0]["token"] == TOKEN
    plain = AppProcess(tmp_path / "plain", port=1, pg_dsn="x", redis_url="y")
    assert "--incidents" not in plain.argv()
