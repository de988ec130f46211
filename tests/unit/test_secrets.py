"""Secrets: typed SecretStr in the config, read from the environment, scrubbed from every output."""

from __future__ import annotations

import json
import logging
import os
import stat

import httpx
import pytest

from harness import redact
from harness.config import load_config, parse_config
from harness.errors import ConfigError
from harness.results import RunRecord, write_run
from harness.timeline import Timeline
from resilience.backup.engines.pgbackrest import classify_error, scrub, secret_options
from resilience.incidents import Alert, IncidentManager, WebhookError, WebhookSink

ACCESS, SECRET = "AKIAFAKESECRET123", "fake-secret-XYZ"


@pytest.fixture(autouse=True)
def _fresh_redactor(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    redact.clear()
    yield
    redact.clear()


def s3(**keys) -> dict:
    return {"drill": {"repository": {"kind": "s3", "endpoint_url": "http://127.0.0.1:9", "bucket": "b", **keys}}}


def test_s3_keys_are_secret_and_dump_masked():
    cfg = parse_config(s3(access_key=ACCESS, secret_key=SECRET))
    rc = cfg.drill.repository
    assert rc.access_key.get_secret_value() == ACCESS and rc.secret_key.get_secret_value() == SECRET
    dumped = json.dumps(cfg.model_dump(mode="json"))
    assert ACCESS not in dumped and SECRET not in dumped and '"secret_key": "**********"' in dumped
    assert ACCESS not in repr(cfg) and SECRET not in str(cfg)


def test_env_reference_reads_the_variable(monkeypatch):
    monkeypatch.setenv("MY_S3_SECRET", SECRET)
    cfg = parse_config(s3(access_key=ACCESS, secret_key="env:MY_S3_SECRET"))
    assert cfg.drill.repository.secret_key.get_secret_value() == SECRET


def test_standard_aws_variables_are_the_default_for_s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    rc = parse_config(s3()).drill.repository
    assert (rc.access_key.get_secret_value(), rc.secret_key.get_secret_value()) == (ACCESS, SECRET)
    assert parse_config({}).drill.repository.access_key is None  # a local repository takes none


@pytest.mark.parametrize(("value", "message"), [
    ("env:CHAOSDRILL_TEST_UNSET_VAR", "drill.repository.secret_key: environment variable CHAOSDRILL_TEST_UNSET_VAR "
                                      "is not set"),
    ("env:not a name", "drill.repository.secret_key: env:not a name: not an environment variable name"),
    (12345678, "drill.repository.secret_key: expected a string, or env:NAME"),
])
def test_a_bad_secret_is_one_line_naming_the_key_without_its_value(tmp_path, monkeypatch, value, message):
    monkeypatch.delenv("CHAOSDRILL_TEST_UNSET_VAR", raising=False)
    conf = tmp_path / "chaosdrill.toml"
    conf.write_text(f'[drill.repository]\nkind = "s3"\nsecret_key = {json.dumps(value)}\n')
    with pytest.raises(ConfigError) as info:
        load_config(conf)
    text = str(info.value)
    assert "\n" not in text and message in text and "12345678" not in text
    assert info.value.exit_code == 2


def test_run_secrets_are_redacted_too(monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", "tok-abcdef-123")
    parse_config({"run": {"secrets": ["env:SHOP_TOKEN", "literal-pass-9"]}})
    assert redact.redact("auth tok-abcdef-123 and literal-pass-9") == "auth ********** and **********"


def test_drill_overrides_keep_the_secret_values():
    """`chaosdrill drill --archive-timeout` rebuilds the config from a python-mode dump: secrets survive."""
    cfg = parse_config(s3(access_key=ACCESS, secret_key=SECRET))
    data = cfg.model_dump(exclude_defaults=True)
    again = parse_config(data | {"drill": data["drill"] | {"archive_timeout": "2s"}})
    assert again.drill.repository.secret_key.get_secret_value() == SECRET


def test_redactor_scrubs_plain_percent_encoded_and_nested():
    redact.register("ab/c+d=secret", None, "abc")  # short values are no secret: ignored
    assert redact.redact("x ab/c+d=secret y ab%2Fc%2Bd%3Dsecret z abc") == "x ********** y ********** z abc"
    data = {"k": ["ab/c+d=secret", {"ab/c+d=secret": 1}], "n": 3}
    assert redact.redact_obj(data) == {"k": ["**********", {"**********": 1}], "n": 3}
    assert redact.redact("other", extra=["other"]) == "**********"


def test_log_records_are_scrubbed(caplog):
    redact.register(SECRET)
    with caplog.at_level(logging.WARNING):
        logging.getLogger("chaosdrill.test").warning("failed with %s", SECRET)
        try:
            raise RuntimeError(f"boom {SECRET}")
        except RuntimeError:
            logging.getLogger("chaosdrill.test").exception("oops")
    assert SECRET not in caplog.text and "failed with **********" in caplog.text


def test_run_directory_is_owner_only_and_scrubbed(tmp_path):
    cfg = parse_config(s3(access_key=ACCESS, secret_key=SECRET))
    tl = Timeline()
    tl.event("drill.error", "drill", error=f"pgbackrest: HTTP 403 <AWSAccessKeyId>{ACCESS}</AWSAccessKeyId>")
    run_dir = tmp_path / "results" / "run-1"
    record = RunRecord(run_id="run-1", scenario="dr_restore", started_at="", finished_at="", verdict="failed",
                       objectives=[], measurements={}, config=cfg.model_dump(mode="json"), environment={},
                       notes=[f"error: secret {SECRET}"])
    write_run(run_dir, record, tl)
    for path in [tmp_path / "results", run_dir, *run_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        if path.is_file():
            body = path.read_bytes()
            assert ACCESS.encode() not in body and SECRET.encode() not in body, path


def test_pgbackrest_errors_never_quote_the_keys():
    opts = {"repo1-type": "s3", "repo1-s3-key": ACCESS, "repo1-s3-key-secret": SECRET, "repo1-s3-bucket": "b"}
    assert sorted(secret_options(opts)) == sorted([ACCESS, SECRET])
    line = f"ERROR: [039]: HTTP request failed with 403: <AWSAccessKeyId>{ACCESS}</AWSAccessKeyId>"
    err = classify_error("pgbackrest backup", 39, scrub(line, secret_options(opts)))
    assert "credentials" in str(err) and ACCESS not in str(err)


async def test_webhook_token_is_sent_but_never_shown(caplog):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(500)

    url = "http://127.0.0.1:9/services/T000/B000/hooksecretpath"
    sink = WebhookSink(url, token="whk-token-0001", transport=httpx.MockTransport(handler))
    with pytest.raises(httpx.HTTPStatusError) as info:
        await sink.send(Alert(severity="info", title="x"))
    assert seen == ["Bearer whk-token-0001"]
    assert "whk-token-0001" not in str(info.value) and "hooksecretpath" not in str(info.value)
    assert "hooksecretpath" not in repr(sink) and repr(sink) == "WebhookSink('http://127.0.0.1:9')"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {url}", request=request)

    failing = WebhookSink(url, token="whk-token-0001", transport=httpx.MockTransport(refuse))
    with pytest.raises(WebhookError) as info:
        await failing.send(Alert(severity="info", title="x"))
    assert "hooksecretpath" not in str(info.value) and "127.0.0.1:9" in str(info.value)
    with caplog.at_level(logging.WARNING):
        await IncidentManager([sink, failing]).alert(Alert(severity="info", title="y"))
    assert "whk-token-0001" not in caplog.text and "hooksecretpath" not in caplog.text and "500" in caplog.text


def test_results_files_written_elsewhere_are_not_world_readable(tmp_path):
    out = redact.write_private(tmp_path / "f.txt", "x")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600



def test_a_secret_equal_to_a_schema_name_masks_values_but_keeps_keys():
    """A weak secret ("chaosdrill", the compose demo's first password) must not corrupt result.json."""
    redact.register("chaosdrill")
    assert redact.redact_obj({"chaosdrill": "chaosdrill 1.0", "a/chaosdrill": 1}) == {
        "chaosdrill": "********** 1.0", "a/**********": 1}
