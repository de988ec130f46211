"""JSON the way Go's encoding/json reads and writes it, so error texts match real Toxiproxy.

Clients of Toxiproxy compare error strings ("bad request body: invalid character 'n' looking
for beginning of object key string"), so decoding reports Go's wording: a syntax scan in the
shape of Go's scanner, then a type check against a small schema of the Go struct, naming the
field as Go does ("json: cannot unmarshal string into Go struct field Proxy.enabled of type
bool"). Like `json.Decoder.Decode`, only the first value is read; trailing bytes are ignored.
Encoding is compact with `<`, `>`, `&`, U+2028 and U+2029 escaped, and float32 printed in its
shortest form.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["Field", "GoJSONError", "Struct", "check", "decode", "dumps", "float32", "format_float32"]

_WS = b" \t\r\n"
_INT64 = (-(2**63), 2**63 - 1)
_MAX_DEPTH = 10000  # encoding/json's maxNestingDepth
_SURROGATE = re.compile("[\ud800-\udfff]")


class GoJSONError(Exception):
    """The text Go's decoder would give, e.g. `unexpected EOF`."""


@dataclass(frozen=True)
class Field:
    """A Go struct field: JSON key and Go type ("string", "bool", "int64", "float32", or a Struct)."""

    key: str
    gotype: Any


@dataclass(frozen=True)
class Struct:
    """A Go struct type: `name` is what error messages print (e.g. "Proxy")."""

    name: str
    fields: tuple[Field, ...]
    gotype: str = ""  # how Go prints the type itself, e.g. "toxiproxy.Proxy"

    def field(self, key: str) -> Field | None:
        for f in self.fields:
            if f.key == key:
                return f
        low = key.lower()  # encoding/json falls back to a case-insensitive match
        for f in self.fields:
            if f.key.lower() == low:
                return f
        return None


def _quote_char(c: str) -> str:
    """Go's scanner `quoteChar`: the offending character in single quotes, escaped like strconv.Quote."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    if c.isprintable():
        return f"'{c}'"
    esc = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}.get(c)
    if esc is None:
        o = ord(c)
        esc = f"\\x{o:02x}" if o < 0x80 else (f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return f"'{esc}'"


class _Scanner:
    """Go's scanner states, reduced to what produces its error messages."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def err(self, context: str) -> GoJSONError:
        if self.i >= len(self.s):
            return GoJSONError("unexpected EOF")
        return GoJSONError(f"invalid character {_quote_char(self.s[self.i])} {context}")

    def ws(self) -> None:
        s = self.s
        while self.i < len(s) and s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def value(self) -> Any:
        """Scan one value and build it, without recursion: Go's decoder accepts nesting up to
        10000 deep and refuses deeper input with a syntax error, never running out of stack."""
        stack: list[list[Any]] = []  # [container, key of the value being read (objects)]
        while True:
            self.ws()
            c = self.peek()
            v: Any
            if c == "{" or c == "[":
                if len(stack) >= _MAX_DEPTH:
                    raise self.err("exceeded max depth")
                self.i += 1
                self.ws()
                if c == "{":
                    if self.peek() == "}":
                        self.i += 1
                        v = {}
                    else:
                        stack.append([{}, self.key()])
                        continue
                elif self.peek() == "]":
                    self.i += 1
                    v = []
                else:
                    stack.append([[], None])
                    continue
            elif c == '"':
                v = self.string()
            elif c == "-" or c.isdigit() and c.isascii():
                v = self.number()
            else:
                v = self.literal(c)
            while True:  # a value is complete: add it to its container, close what ends here
                if not stack:
                    return v
                top = stack[-1]
                container = top[0]
                is_object = isinstance(container, dict)
                if is_object:
                    container[top[1]] = v  # a repeated key: the last one wins, as in Go
                else:
                    container.append(v)
                self.ws()
                c = self.peek()
                if c == ",":
                    self.i += 1
                    if is_object:
                        self.ws()
                        top[1] = self.key()
                    break
                if c == ("}" if is_object else "]"):
                    self.i += 1
                    v = container
                    stack.pop()
                    continue
                raise self.err("after object key:value pair" if is_object else "after array element")

    def key(self) -> str:
        if self.peek() != '"':
            raise self.err("looking for beginning of object key string")
        k = self.string()
        self.ws()
        if self.peek() != ":":
            raise self.err("after object key")
        self.i += 1
        return k

    def literal(self, c: str) -> Any:
        for word, value in (("true", True), ("false", False), ("null", None)):
            if c == word[0]:
                self.i += 1
                for expect in word[1:]:
                    if self.peek() != expect:
                        raise self.err(f"in literal {word} (expecting {_quote_char(expect)})")
                    self.i += 1
                return value
        raise self.err("looking for beginning of value")

    def string(self) -> str:
        start = self.i
        self.i += 1
        s = self.s
        while True:
            if self.i >= len(s):
                raise self.err("")
            c = s[self.i]
            if c == '"':
                self.i += 1
                text = json.loads(s[start : self.i])
                # Go turns an escaped surrogate that is not half of a pair into U+FFFD
                return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text
            if c == "\\":
                self.i += 1
                e = self.peek()
                if e == "u":
                    self.i += 1
                    for _ in range(4):
                        if self.peek() == "" or self.peek() not in "0123456789abcdefABCDEF":
                            raise self.err("in \\u hexadecimal character escape")
                        self.i += 1
                    continue
                if e == "" or e not in '"\\/bfnrt':
                    raise self.err("in string escape code")
                self.i += 1
                continue
            if ord(c) < 0x20:
                raise self.err("in string literal")
            self.i += 1

    def _digits(self, context: str) -> None:
        if not ("0" <= self.peek() <= "9"):
            raise self.err(context)
        while "0" <= self.peek() <= "9":
            self.i += 1

    def number(self) -> Any:
        start = self.i
        if self.peek() == "-":
            self.i += 1
        if self.peek() == "0":
            self.i += 1
        else:
            self._digits("in numeric literal")
        if self.peek() == ".":
            self.i += 1
            self._digits("after decimal point in numeric literal")
        if self.peek() in ("e", "E"):
            self.i += 1
            if self.peek() in ("+", "-"):
                self.i += 1
            self._digits("in exponent of numeric literal")
        text = self.s[start : self.i]
        if "." in text or "e" in text or "E" in text:
            return _Raw(text)
        return int(text)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


class _Raw(float):
    """A float that remembers its source text (Go prints "number 1.5" verbatim)."""

    text: str

    def __new__(cls, text: str) -> _Raw:
        obj = super().__new__(cls, float(text))
        obj.text = text
        return obj


def _type_error(v: Any, where: str, gotype: str, number_text: str | None = None) -> GoJSONError:
    kind = _kind(v) if number_text is None else f"number {number_text}"
    return GoJSONError(f"json: cannot unmarshal {kind} into {where} of type {gotype}")


def check(value: Any, schema: Any, path: str = "", owner: str = "") -> Any:
    """Convert `value` to the Go type `schema`; return the converted value or raise the first Go error.

    `owner`/`path` name the field the way Go does: "Go struct field Proxy.enabled".
    """
    where = f"Go struct field {owner}.{path}" if path else "Go value"
    if value is None:
        return None  # null leaves a non-pointer Go field untouched
    if isinstance(schema, Struct):
        if not isinstance(value, dict):
            raise _type_error(value, where, schema.gotype or f"toxics.{schema.name}")
        out: dict[str, Any] = {}
        inner_owner = owner if path else schema.name
        for key, v in value.items():
            f = schema.field(key)
            if f is None:
                continue  # unknown keys are ignored
            sub = f"{path}.{f.key}" if path else f.key
            out[f.key] = check(v, f.gotype, sub, inner_owner)
        return out
    if schema == "any":
        return value
    if schema == "string":
        if not isinstance(value, str):
            raise _type_error(value, where, "string")
        return value
    if schema == "bool":
        if not isinstance(value, bool):
            raise _type_error(value, where, "bool")
        return value
    if schema in ("int64", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, where, schema)
        if isinstance(value, float) or not (_INT64[0] <= value <= _INT64[1]):
            text = value.text if isinstance(value, _Raw) else str(value)
            raise _type_error(value, where, schema, text)
        return int(value)
    if schema == "float32":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, where, "float32")
        f = float(value)
        if math.isinf(f) or abs(f) > 3.4028234663852886e38:
            text = value.text if isinstance(value, _Raw) else str(value)
            raise _type_error(value, where, "float32", text)
        return struct.unpack("f", struct.pack("f", f))[0]
    if isinstance(schema, tuple) and schema[0] == "array":
        if not isinstance(value, list):
            raise _type_error(value, "Go value", schema[2])
        return [check(v, schema[1], "", "") for v in value]
    raise AssertionError(f"unknown schema {schema!r}")


def decode(body: bytes, schema: Any) -> Any:
    """Decode the first JSON value of `body` into `schema`, raising GoJSONError with Go's text.

    Integers stay int; non-integer numbers keep their text for Go's "number 1.5" messages.
    """
    text = body.decode("utf-8", errors="replace")
    sc = _Scanner(text)
    sc.ws()
    if sc.i >= len(text):
        raise GoJSONError("EOF")
    value = sc.value()
    if isinstance(schema, Struct) and not isinstance(value, dict) and value is not None:
        raise _type_error(value, "Go value", schema.gotype or schema.name)
    return check(value, schema, "", "")


def format_float32(x: float) -> str:
    """Go's `strconv.FormatFloat(float64(float32(x)), 'g'-ish, -1, 32)` as encoding/json prints it."""
    f32 = struct.unpack("f", struct.pack("f", x))[0]
    if f32 == 0:
        return "0" if math.copysign(1, f32) > 0 else "-0"
    for precision in range(1, 18):
        s = f"{f32:.{precision}g}"
        if struct.unpack("f", struct.pack("f", float(s)))[0] == f32:
            break
    mantissa_exp = float(s)
    a = abs(mantissa_exp)
    if a < 1e-6 or a >= 1e21:
        m, _, e = f"{mantissa_exp:.{precision - 1}e}".partition("e")
        m = m.rstrip("0").rstrip(".") if "." in m else m
        exp = int(e)
        return f"{m}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    out = repr(float(s))
    if "e" in out:
        out = f"{float(s):f}".rstrip("0").rstrip(".")
    if out.endswith(".0"):
        out = out[:-2]
    return out


class _Float32:
    """Marks a value to print in float32 shortest form."""

    __slots__ = ("v",)

    def __init__(self, v: float) -> None:
        self.v = v


_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _encode(obj: Any, out: list[str]) -> None:
    if isinstance(obj, dict):
        out.append("{")
        first = True
        for k, v in obj.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(k, ensure_ascii=False).translate(_ESCAPES))
            out.append(":")
            _encode(v, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _encode(v, out)
        out.append("]")
    elif isinstance(obj, _Float32):
        out.append(format_float32(obj.v))
    elif isinstance(obj, str):
        out.append(json.dumps(obj, ensure_ascii=False).translate(_ESCAPES))
    elif obj is None:
        out.append("null")
    elif isinstance(obj, bool):
        out.append("true" if obj else "false")
    else:
        out.append(str(int(obj)) if isinstance(obj, int) else repr(obj))


def dumps(obj: Any) -> bytes:
    """Compact JSON, key order preserved, Go's HTML-safe escaping."""
    out: list[str] = []
    _encode(obj, out)
    return "".join(out).encode("utf-8")


def float32(v: float) -> _Float32:
    return _Float32(v)
