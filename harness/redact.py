"""Secrets never leave the process: every value the config marks secret is scrubbed from what
chaosdrill writes or prints.

    load_config() ──register(cfg)──► the process's secret set ──► redact(text) / redact_obj(data)
                                                                    result.json, timeline.csv, report,
                                                                    progress lines, error lines, logs

The config holds secrets as pydantic `SecretStr` (dumped as "**********"); this module is the
second line: a secret that reached an error message (a pgBackRest or boto3 error quoting a
response, a traceback) is replaced by MASK wherever chaosdrill writes it. Values shorter than
MIN_LENGTH are not scrubbed (replacing "a" everywhere would mangle every line, and is no secret).
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

MASK = "**********"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
MIN_LENGTH = 4
_secrets: set[str] = set()
_factory_installed = False


def _variants(value: str) -> set[str]:
    """The secret as written, and as it appears percent-encoded in a URL or query string."""
    return {value, quote(value, safe=""), quote(value, safe="/"), html.escape(value)}


def register(*values: str | SecretStr | None) -> None:
    """Scrub these values (plain or SecretStr) from everything written or printed from now on."""
    for v in values:
        raw = v.get_secret_value() if isinstance(v, SecretStr) else v
        if raw and len(raw) >= MIN_LENGTH:
            _secrets.update(_variants(raw))
    if _secrets:
        _install_log_factory()


def secrets_of(obj: Any) -> list[str]:
    """Every SecretStr value inside a model (nested models, dicts, lists and tuples included)."""
    found: list[str] = []
    if isinstance(obj, SecretStr):
        found.append(obj.get_secret_value())
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            found += secrets_of(getattr(obj, name))
    elif isinstance(obj, dict):
        for v in obj.values():
            found += secrets_of(v)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            found += secrets_of(v)
    return found


def register_config(cfg: BaseModel) -> None:
    register(*secrets_of(cfg))


def known() -> frozenset[str]:
    return frozenset(_secrets)


def clear() -> None:
    """Forget every registered secret (tests)."""
    _secrets.clear()


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with every registered secret (and each of `extra`) replaced by MASK."""
    if not isinstance(text, str):
        text = str(text)
    values = set(_secrets)
    for e in extra:
        if e and len(e) >= MIN_LENGTH:
            values |= _variants(e)
    for secret in sorted(values, key=len, reverse=True):  # longest first: a secret containing another
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_obj(obj: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, strings) with every secret scrubbed from its strings."""
    if not _secrets:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, SecretStr):
        return MASK
    if isinstance(obj, dict):
        # Names in our own schema ("chaosdrill", "postgres", …) stay: masking a key that equals a weak
        # secret would corrupt the document (a report could no longer find `versions.chaosdrill`).
        # Any other key is scrubbed like a value.
        return {k if isinstance(k, str) and _IDENTIFIER.fullmatch(k) else redact_obj(k): redact_obj(v)
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj


# -- owner-only files ----------------------------------------------------------------------------------
def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents owner-only (0700); an existing `path` is made 0700 too."""
    path = Path(path)
    for d in reversed([path, *path.parents]):
        if not d.exists():
            d.mkdir(exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str | bytes) -> Path:
    """Write `path` as an owner-only (0600) file, with every registered secret scrubbed from text."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w", **({} if isinstance(text, bytes) else
                                                                     {"encoding": "utf-8", "newline": ""})) as f:
        f.write(text if isinstance(text, bytes) else redact(text))
    return path


def make_private(root: Path) -> None:
    """Everything below `root` (and root) owner-only: directories 0700, files 0600 (symlinks left alone)."""
    root = Path(root)
    if not root.exists():
        return
    os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o700)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, 0o600)


# -- logs ---------------------------------------------------------------------------------------------
def _install_log_factory() -> None:
    """Every log record created in this process has its message scrubbed, whichever handler writes it."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _secrets:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken format string is the logger's problem, not ours
                return record
            scrubbed = redact(message)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
            if record.exc_info and not record.exc_text:  # the traceback a handler would print
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
