"""Go encoding/json wording, float32 printing and HTML-safe output."""

from __future__ import annotations

import pytest

from harness.toxiproxy.gojson import GoJSONError, decode, dumps, float32, format_float32
from harness.toxiproxy.proxy import PROXY_SCHEMA


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "EOF"),
        (b"   ", "EOF"),
        (b"{n", "invalid character 'n' looking for beginning of object key string"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b'{"a":tx}', "invalid character 'x' in literal true (expecting 'r')"),
        (b'{"a":-}', "invalid character '}' in numeric literal"),
        (b'{"a":"\\q"}', "invalid character 'q' in string escape code"),
        (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
        (b'{"name":"x"', "unexpected EOF"),
        (b"@", "invalid character '@' looking for beginning of value"),
        (b'{"enabled":"x"}', "json: cannot unmarshal string into Go struct field Proxy.enabled of type bool"),
        (b'{"name":5}', "json: cannot unmarshal number into Go struct field Proxy.name of type string"),
        (b"[]", "json: cannot unmarshal array into Go value of type toxiproxy.Proxy"),
    ],
)
def test_decode_errors_use_go_wording(body, message):
    with pytest.raises(GoJSONError) as info:
        decode(body, PROXY_SCHEMA)
    assert str(info.value) == message


def test_decode_first_value_only_and_case_insensitive_keys():
    assert decode(b'{"NAME":"x","enabled":null} trailing', PROXY_SCHEMA) == {"name": "x", "enabled": None}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.5, "0.5"),
        (0.1, "0.1"),
        (2.5, "2.5"),
        (1 / 3, "0.33333334"),
        (0.0, "0"),
        (1e-7, "1e-07"),
        (1e21, "1e+21"),
    ],
)
def test_float32_like_go(value, text):
    assert format_float32(value) == text


def test_dumps_html_safe_compact_ordered():
    assert (
        dumps({"b": "<&>", "a": [1, float32(0.25)], "c": None})
        == b'{"b":"\\u003c\\u0026\\u003e","a":[1,0.25],"c":null}'
    )
