"""JSON Schema to a valid instance: tool-call arguments and structured output.

``compile_schema`` reads a JSON Schema once (a tool's ``parameters``, a ``response_format``'s
``json_schema.schema``) and either refuses it with a ``SchemaError`` (which names where and
why: the API answers it with a 400) or returns a ``CompiledSchema`` whose ``instance(rng)`` is a
JSON value valid against the schema, drawn from the random source (deterministic for a seeded
one). Strings are words of the answers' prose (``text.PROSE``), so an instance reads like
something a model wrote and its JSON text splits into real-looking tokens (``json_pieces``).

Supported: ``type`` (one or a list), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties`` (boolean or schema), ``minProperties``/``maxProperties``, ``items``,
``prefixItems``, ``minItems``/``maxItems``, ``uniqueItems`` (for scalar items),
``minLength``/``maxLength``, ``format`` (date-time, date, time, email, uri, uuid, ipv4,
hostname), ``minimum``/``maximum`` and their exclusive forms (draft 4's boolean ones too),
``multipleOf``, local ``$ref`` (``#/$defs/...``, ``#/definitions/...``, ``#``; recursive ones
too), ``anyOf`` and ``oneOf`` (alone with annotations; ``oneOf`` when its branches cannot
overlap: different types, different constants, or objects told apart by a constant property,
as pydantic's discriminated unions are), ``allOf`` of one schema, boolean schemas. Annotations
(``title``, ``description``, ``default``, ``examples``, ...) and unknown keywords are ignored,
as JSON Schema says; the assertion keywords not listed here (``pattern``, ``not``, ``if``,
``contains``, ``patternProperties``, ...) are refused, never silently ignored.

Work and size are bounded whatever the schema: at most ``SchemaLimits.max_nodes`` compiled
subschemas (each ``$ref`` expanded once per depth), nesting at most ``max_depth`` deep (a
recursive ``$ref`` is cut there: the instance stops recursing), and a schema whose smallest
instance is longer than ``max_instance_chars`` is refused. Instances are kept near their
smallest size plus ``extra_chars``: optional properties, array items beyond ``minItems`` and
string length beyond ``minLength`` are added only while that allowance lasts.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable

import msgspec

from fakeai.simulation.text import PROSE

__all__ = ("CompiledSchema", "SchemaError", "SchemaLimits", "compile_schema", "json_pieces", "json_text")

INF = math.inf

_WORDS = tuple(re.findall(r"[A-Za-z]+", PROSE))
"""The prose's words, in order: strings are runs of consecutive words."""
_KEY_WORDS = tuple(sorted({word.lower() for word in _WORDS if len(word) > 3}))
"""Names of properties a schema leaves open (``{"type": "object"}``)."""

_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$anchor", "$comment", "$defs", "definitions", "$vocabulary", "$dynamicAnchor",
        "title", "description", "default", "examples", "example", "deprecated", "readOnly", "writeOnly",
        "discriminator", "nullable", "strict", "contentEncoding", "contentMediaType", "contentSchema",
    }
)
_UNSUPPORTED = frozenset(
    {
        "pattern", "not", "if", "then", "else", "contains", "minContains", "maxContains", "patternProperties",
        "propertyNames", "dependentRequired", "dependentSchemas", "dependencies", "unevaluatedItems",
        "$dynamicRef", "$recursiveRef", "additionalItems",
    }
)
"""Assertion keywords whose instances this generator cannot build: refused, not ignored."""
_OBJECT_KEYWORDS = ("properties", "required", "additionalProperties", "minProperties", "maxProperties",
                    "unevaluatedProperties")
_ARRAY_KEYWORDS = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")
_STRING_KEYWORDS = ("minLength", "maxLength", "format")
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date-time": lambda rng: "20%02d-%02d-%02dT%02d:%02d:%02dZ" % (
        rng.randrange(20, 30), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24), rng.randrange(60),
        rng.randrange(60)),
    "date": lambda rng: "20%02d-%02d-%02d" % (rng.randrange(20, 30), rng.randrange(1, 13), rng.randrange(1, 29)),
    "time": lambda rng: "%02d:%02d:%02dZ" % (rng.randrange(24), rng.randrange(60), rng.randrange(60)),
    "email": lambda rng: f"{rng.choice(_KEY_WORDS)}@example.com",
    "uri": lambda rng: f"https://example.com/{rng.choice(_KEY_WORDS)}",
    "url": lambda rng: f"https://example.com/{rng.choice(_KEY_WORDS)}",
    "uuid": lambda rng: "%08x-%04x-4%03x-%04x-%012x" % (
        rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12), 0x8000 | rng.getrandbits(14),
        rng.getrandbits(48)),
    "ipv4": lambda rng: "10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)),
    "hostname": lambda rng: f"{rng.choice(_KEY_WORDS)}.example.com",
}
_FORMAT_CHARS = {"date-time": 20, "date": 10, "time": 9, "uuid": 36, "ipv4": 15}
"""Longest text of the fixed-shape formats (the others are at most 40 characters)."""


class SchemaError(ValueError):
    """A schema fakeai does not build instances of: ``path`` says where (``properties.city.type``)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{message} (at {path})" if path else message)
        self.path = path
        self.reason = message


class SchemaLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_depth: int = 32
    """Deepest nesting of subschemas (``$ref`` expansions included)."""
    max_nodes: int = 2000
    """Most subschemas compiled for one schema (each ``$ref`` expanded once per depth)."""
    max_ref_depth: int = 12
    """Most ``$ref`` expansions nested in one another; deeper, a ``$ref`` has no instance."""
    max_instance_chars: int = 16384
    """Largest smallest-instance (its JSON text's characters) a schema may ask for."""


DEFAULT_LIMITS = SchemaLimits()


# -- compiled nodes ----------------------------------------------------------------------------


class _Node:
    """A compiled subschema: ``min_chars`` is the length of its smallest instance (``INF``: it
    has none), ``domain`` how many distinct instances it has (``None``: many)."""

    __slots__ = ("domain", "min_chars")

    def types(self) -> frozenset[str]:
        return frozenset(_TYPES)

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        raise NotImplementedError


class _Never(_Node):
    def __init__(self) -> None:
        self.min_chars = INF
        self.domain = 0

    def types(self) -> frozenset[str]:
        return frozenset()


class _Values(_Node):
    """``enum`` or ``const``: one of the listed values."""

    __slots__ = ("encoded", "shortest", "values")

    def __init__(self, values: list[object]) -> None:
        self.values = values
        self.encoded = [json_text(value) for value in values]
        lengths = list(map(len, self.encoded))
        self.min_chars = min(lengths) if values else INF
        self.shortest = lengths.index(self.min_chars) if values else 0
        self.domain = len(set(self.encoded))

    def types(self) -> frozenset[str]:
        return frozenset(_json_type(value) for value in self.values)

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        picked = rng.randrange(len(self.values))
        extra = len(self.encoded[picked]) - self.min_chars
        if extra > spare[0]:  # a longer value than the allowance: the shortest instead
            picked, extra = self.shortest, 0
        spare[0] -= extra
        return self.values[picked]


class _Null(_Node):
    def __init__(self) -> None:
        self.min_chars = 4
        self.domain = 1

    def types(self) -> frozenset[str]:
        return frozenset({"null"})

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        return None


class _Boolean(_Node):
    def __init__(self) -> None:
        self.min_chars = 4
        self.domain = 2

    def types(self) -> frozenset[str]:
        return frozenset({"boolean"})

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        return rng.random() < 0.5


class _String(_Node):
    __slots__ = ("fmt", "max_length", "min_length")

    def __init__(self, min_length: int, max_length: float, fmt: str | None) -> None:
        self.min_length = min_length
        self.max_length = max_length
        self.fmt = fmt
        self.domain = 1 if max_length == 0 else None
        self.min_chars = 2 + (_FORMAT_CHARS.get(fmt, 40) if fmt else min_length)

    def types(self) -> frozenset[str]:
        return frozenset({"string"})

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        if self.fmt:
            return _FORMATS[self.fmt](rng)
        room = min(self.max_length, self.min_length + min(spare[0], 60))
        target = self.min_length if room <= self.min_length else rng.randint(self.min_length, int(room))
        if target == 0:
            return ""
        words = []
        size = 0
        position = rng.randrange(len(_WORDS))
        while size < target:
            word = _WORDS[position % len(_WORDS)]
            position += 1
            piece = word if not words else " " + word
            if size + len(piece) > target:
                if size >= self.min_length:
                    break
                piece = piece[: target - size]  # the last word cut to the exact length asked
            words.append(piece)
            size += len(piece)
        spare[0] -= max(0, size - self.min_length)
        return "".join(words)


class _Integer(_Node):
    __slots__ = ("high", "low", "step")

    def __init__(self, low: int, high: int, step: int, path: str) -> None:
        # the multiples of step in [low, high]
        first = -(-low // step)
        last = high // step
        if first > last:
            raise SchemaError("no integer satisfies minimum, maximum and multipleOf together", path)
        self.low, self.high, self.step = first, last, step
        self.min_chars = min(len(str(first * step)), len(str(last * step)), 1 if first <= 0 <= last else 99)
        self.domain = last - first + 1 if last - first < 1_000_000 else None

    def types(self) -> frozenset[str]:
        return frozenset({"integer"})

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        low, high = self.low, self.high
        if low <= 0 <= high:  # a small number near zero reads like one a model would pick
            low, high = max(low, 0), min(high, max(100 // self.step, 1))
        elif low > 0:
            high = min(high, low + 100)
        else:
            low = max(low, high - 100)
        return rng.randint(low, high) * self.step


class _Number(_Node):
    __slots__ = ("high", "high_open", "low", "low_open", "step")

    def __init__(self, low: float, low_open: bool, high: float, high_open: bool, step: float | None,
                 path: str) -> None:
        self.low, self.low_open, self.high, self.high_open, self.step = low, low_open, high, high_open, step
        if low > high or (low == high and (low_open or high_open)):
            raise SchemaError("no number satisfies minimum and maximum together", path)
        self.min_chars = 3
        self.domain = None
        if step is not None and self._multiple(random.Random(0)) is None:
            raise SchemaError("no number satisfies minimum, maximum and multipleOf together", path)

    def types(self) -> frozenset[str]:
        return frozenset({"number"})

    def _inside(self, value: float) -> bool:
        if value < self.low or (self.low_open and value == self.low):
            return False
        return not (value > self.high or (self.high_open and value == self.high))

    def _window(self) -> tuple[float, float]:
        """Where values are drawn: about [0, 100], moved and cut to fit the bounds."""
        low, high = max(self.low, 0.0), min(self.high, 100.0)
        if low >= high:  # the bounds are beside [0, 100], or meet it at one point (maybe one left out)
            low, high = (self.low, min(self.high, self.low + 100)) if self.low >= 0 else (max(self.low, self.high - 100),
                                                                                          self.high)
        return low, high

    def _multiple(self, rng: random.Random) -> float | None:
        """A multiple of ``step`` inside the bounds that passes the float division check
        validators make (``value / step`` is a whole number), or ``None``."""
        step = self.step
        low, high = self._window()
        first = math.ceil(low / step)
        last = math.floor(high / step)
        # an exclusive bound that is itself a multiple: the nearest one inside is the next
        if first <= last and not self._inside(first * step):
            first += 1
        if first <= last and not self._inside(last * step):
            last -= 1
        candidates = [first, last, 0] + [rng.randint(first, last) for _ in range(4)] if first <= last else [0]
        for k in candidates:
            value = k * step
            if math.isfinite(value) and self._inside(value) and (value / step) == int(value / step):
                return value
        return None

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        if self.step is not None:
            return self._multiple(rng)
        low, high = self._window()
        value = round(rng.uniform(low, high), 2)
        if not self._inside(value):
            value = rng.uniform(low, high)
        if not self._inside(value):
            value = math.nextafter(self.low, INF) if self.low_open else self.low
            if not self._inside(value):
                value = (self.low + self.high) / 2
        return value


class _Array(_Node):
    __slots__ = ("items", "max_items", "min_items", "prefix", "unique")

    def __init__(self, prefix: list[_Node], items: _Node | None, min_items: int, max_items: float, unique: bool,
                 path: str) -> None:
        self.prefix, self.items, self.min_items, self.max_items, self.unique = prefix, items, min_items, max_items, unique
        if items is None or items.min_chars == INF:  # nothing may follow the prefix
            max_items = min(max_items, len(prefix))
        for position, node in enumerate(prefix):
            if node.min_chars == INF:
                max_items = min(max_items, position)
                break
        self.max_items = max_items
        if min_items > max_items:
            self.min_chars: float = INF
        else:
            sizes = [node.min_chars for node in prefix[:min_items]]
            if min_items > len(prefix):
                sizes.append((min_items - len(prefix)) * items.min_chars)  # type: ignore[union-attr]
            self.min_chars = 2 + sum(sizes) + max(0, min_items - 1)
        if unique and min_items > len(prefix) and items is not None:
            if items.domain is not None and items.domain < min_items - len(prefix):
                raise SchemaError("uniqueItems: the items have fewer distinct values than minItems", path)
        self.domain = 1 if self.max_items == 0 else None

    def types(self) -> frozenset[str]:
        return frozenset({"array"})

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        count = self.min_items
        if count < self.max_items:
            extra = rng.randint(0, min(3, self.max_items - count)) if self.max_items != INF else rng.randint(0, 3)
            count += extra
        values: list[object] = []
        seen: set[str] = set()
        tries = 0
        while len(values) < count:
            position = len(values)
            node = self.prefix[position] if position < len(self.prefix) else self.items
            if position >= self.min_items:  # an optional item: only while the allowance lasts
                if node.min_chars + 1 > spare[0]:  # type: ignore[union-attr]
                    break
                spare[0] -= node.min_chars + 1  # type: ignore[union-attr]
            value = node.generate(rng, spare)  # type: ignore[union-attr]
            if self.unique:
                key = json_text(value)
                if key in seen:
                    tries += 1
                    if tries > 8 * count + 16:
                        if position >= self.min_items:
                            break
                        value = _distinct_fallback(node, seen)  # type: ignore[arg-type]
                        key = json_text(value)
                    else:
                        continue
                seen.add(key)
            values.append(value)
        return values


def _distinct_fallback(node: _Node, seen: set[str]) -> object:
    """A value of ``node`` not yet in ``seen``, found by counting (scalar items only)."""
    if isinstance(node, _Values):
        for value, encoded in zip(node.values, node.encoded):
            if encoded not in seen:
                return value
    if isinstance(node, _Integer):
        for k in range(node.low, node.high + 1):
            if json_text(k * node.step) not in seen:
                return k * node.step
    if isinstance(node, _Boolean):
        return "true" not in seen
    if isinstance(node, _String) and not node.fmt:
        for k in range(len(seen) + 1):
            text = (_WORDS[k % len(_WORDS)] * (node.min_length + 1))[: max(node.min_length, 1)] + str(k)
            if len(text) <= node.max_length and json_text(text) not in seen:
                return text
    return node.generate(random.Random(len(seen)), [0.0])  # not reached for the items compile accepts


class _Object(_Node):
    __slots__ = ("additional", "max_properties", "min_properties", "open_keys", "optional", "required")

    def __init__(self, required: list[tuple[str, _Node]], optional: list[tuple[str, _Node]], additional: _Node | None,
                 min_properties: int, max_properties: float, path: str) -> None:
        self.required, self.additional = required, additional
        self.optional = [(key, node) for key, node in optional if node.min_chars != INF]
        self.min_properties, self.max_properties = min_properties, max_properties
        named = {key for key, _ in required + optional}
        self.open_keys = [word for word in _KEY_WORDS if word not in named] if additional is not None else []
        if len(required) > max_properties:
            raise SchemaError("more required properties than maxProperties", path)
        fill = max(0, min_properties - len(required))
        fill_sizes = sorted(len(json_text(key)) + 1 + node.min_chars for key, node in self.optional)[:fill]
        if len(fill_sizes) < fill:  # the rest are additional properties
            if additional is None or additional.min_chars == INF or fill - len(fill_sizes) > len(self.open_keys):
                self.min_chars: float = INF
                self.domain = 0
                return
            fill_sizes += [10 + additional.min_chars] * (fill - len(fill_sizes))
        sizes = [len(json_text(key)) + 1 + node.min_chars for key, node in required] + fill_sizes
        self.min_chars = 2 + sum(sizes) + max(0, len(sizes) - 1)
        self.domain = 1 if not self.optional and additional is None and all(
            node.domain == 1 for _, node in required) else None

    def types(self) -> frozenset[str]:
        return frozenset({"object"})

    def constant(self, key: str) -> frozenset[str] | None:
        """The encoded values property ``key`` may take when it is required and listed (``None``: any)."""
        for name, node in self.required:
            while isinstance(node, _Ref):
                node = node.target
            if name == key and isinstance(node, _Values):
                return frozenset(node.encoded)
        return None

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        result: dict[str, object] = {}
        for key, node in self.required:
            result[key] = node.generate(rng, spare)
        needed = self.min_properties - len(result)
        optional = list(self.optional)
        rng.shuffle(optional)
        for key, node in optional:
            if len(result) >= self.max_properties:
                break
            cost = len(key) + 4 + node.min_chars
            if needed > 0 or (rng.random() < 0.7 and cost <= spare[0]):
                if needed <= 0:
                    spare[0] -= cost
                needed -= 1
                result[key] = node.generate(rng, spare)
        additional = self.additional
        if additional is not None and additional.min_chars != INF and self.open_keys:
            wanted = needed
            if not self.required and not self.optional and not isinstance(additional, _Never):
                wanted = max(wanted, rng.randint(1, 4))  # an open object ({"type": "object"}) gets a few
            wanted = min(wanted, int(min(self.max_properties, 1e9)) - len(result), len(self.open_keys))
            keys = rng.sample(self.open_keys, max(wanted, 0))
            for position, key in enumerate(keys):
                cost = len(key) + 4 + additional.min_chars
                if position >= needed:
                    if cost > spare[0]:
                        break
                    spare[0] -= cost
                result[key] = additional.generate(rng, spare)
        return result


class _Choice(_Node):
    """``anyOf``/``oneOf`` (branches that cannot overlap), or a list of types: one of ``options``."""

    __slots__ = ("options",)

    def __init__(self, options: list[_Node]) -> None:
        self.options = [node for node in options if node.min_chars != INF]
        self.min_chars = min((node.min_chars for node in self.options), default=INF)
        domains = [node.domain for node in self.options]
        self.domain = None if None in domains else sum(domains)  # type: ignore[arg-type]

    def types(self) -> frozenset[str]:
        return frozenset().union(*(node.types() for node in self.options))

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        affordable = [node for node in self.options if node.min_chars <= self.min_chars + max(spare[0], 0)]
        node = affordable[rng.randrange(len(affordable))]
        spare[0] -= node.min_chars - self.min_chars
        return node.generate(rng, spare)


class _Ref(_Node):
    """A ``$ref``: the node it names, compiled when first reached (so recursion terminates)."""

    __slots__ = ("target",)

    def __init__(self, target: _Node) -> None:
        self.target = target
        self.min_chars = target.min_chars
        self.domain = target.domain

    def types(self) -> frozenset[str]:
        return self.target.types()

    def generate(self, rng: random.Random, spare: list[float]) -> object:
        return self.target.generate(rng, spare)


# -- compiling ---------------------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _matches_types(value: object, types: frozenset[str]) -> bool:
    kind = _json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


class _Compiler:
    def __init__(self, root: object, limits: SchemaLimits) -> None:
        self.root = root
        self.limits = limits
        self.nodes = 0
        self.refs: dict[tuple[str, int, int], _Node] = {}

    def count(self, path: str) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise SchemaError(f"the schema has more than {self.limits.max_nodes} subschemas (its $refs expanded)",
                              path)

    def compile(self, schema: object, path: str, depth: int, ref_depth: int) -> _Node:
        self.count(path)
        if depth > self.limits.max_depth:
            if ref_depth:  # inside a $ref's expansion (a recursive schema): the instance stops here
                return _Never()
            raise SchemaError(f"the schema nests deeper than {self.limits.max_depth} levels", path)
        if schema is True:
            schema = {}
        if schema is False:
            return _Never()
        if not isinstance(schema, dict):
            raise SchemaError("a schema must be a JSON object or a boolean", path)
        for keyword in schema:
            if keyword in _UNSUPPORTED:
                raise SchemaError(f"'{keyword}' is not supported by fakeai's instance generator",
                                  _join(path, keyword))
        if "$ref" in schema:
            return self.ref(schema, path, depth, ref_depth)
        for keyword in ("anyOf", "oneOf", "allOf"):
            if keyword in schema:
                return self.combination(schema, keyword, path, depth, ref_depth)
        if "const" in schema:
            return self.values(schema, [schema["const"]], path)
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise SchemaError("'enum' must be a non-empty array", _join(path, "enum"))
            return self.values(schema, values, path)
        types = self.declared_types(schema, path)
        nodes = [self.typed(schema, kind, path, depth, ref_depth) for kind in types]
        return nodes[0] if len(nodes) == 1 else _Choice(nodes)

    def declared_types(self, schema: dict, path: str) -> list[str]:
        declared = schema.get("type")
        if declared is None:
            inferred = [kind for kind, keywords in (("object", _OBJECT_KEYWORDS), ("array", _ARRAY_KEYWORDS),
                                                    ("string", _STRING_KEYWORDS), ("number", _NUMBER_KEYWORDS))
                        if any(keyword in schema for keyword in keywords)]
            return inferred or ["string", "integer", "boolean"]
        types = [declared] if isinstance(declared, str) else declared
        if not isinstance(types, list) or not types or any(kind not in _TYPES for kind in types):
            raise SchemaError(f"'type' must be one of {', '.join(_TYPES)} or a list of them", _join(path, "type"))
        return list(dict.fromkeys(types))

    def values(self, schema: dict, values: list[object], path: str) -> _Node:
        if "type" in schema:
            types = frozenset(self.declared_types(schema, path))
            values = [value for value in values if _matches_types(value, types)]
            if not values:
                return _Never()
        return _Values(values)

    def ref(self, schema: dict, path: str, depth: int, ref_depth: int) -> _Node:
        reference = schema["$ref"]
        others = [key for key in schema if key != "$ref" and key not in _ANNOTATIONS]
        if others:
            raise SchemaError(f"'$ref' alongside '{others[0]}' is not supported", path)
        if not isinstance(reference, str) or not reference.startswith("#"):
            raise SchemaError("only local references ('#/$defs/Name') are supported", _join(path, "$ref"))
        if ref_depth >= self.limits.max_ref_depth or depth >= self.limits.max_depth:
            return _Never()  # a recursive schema stops recursing here
        key = (reference, ref_depth, depth)
        cached = self.refs.get(key)
        if cached is None:
            cached = self.refs[key] = _Ref(self.compile(self.resolve(reference, path), reference, depth + 1,
                                                        ref_depth + 1))
        return cached

    def resolve(self, reference: str, path: str) -> object:
        target = self.root
        pointer = reference[1:]
        if pointer and not pointer.startswith("/"):
            raise SchemaError(f"cannot resolve '{reference}': only JSON pointers are supported", _join(path, "$ref"))
        for part in pointer.split("/")[1:] if pointer else ():
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise SchemaError(f"cannot resolve '{reference}'", _join(path, "$ref"))
        return target

    def combination(self, schema: dict, keyword: str, path: str, depth: int, ref_depth: int) -> _Node:
        others = [key for key in schema if key != keyword and key not in _ANNOTATIONS]
        if others:
            raise SchemaError(f"'{keyword}' alongside '{others[0]}' is not supported", path)
        branches = schema[keyword]
        where = _join(path, keyword)
        if not isinstance(branches, list) or not branches:
            raise SchemaError(f"'{keyword}' must be a non-empty array", where)
        if keyword == "allOf":
            if len(branches) != 1:
                raise SchemaError("'allOf' of more than one schema is not supported", where)
            return self.compile(branches[0], _join(where, "0"), depth + 1, ref_depth)
        nodes = [self.compile(branch, _join(where, str(i)), depth + 1, ref_depth) for i, branch in enumerate(branches)]
        if keyword == "oneOf":
            for i, first in enumerate(nodes):
                for second in nodes[i + 1:]:
                    if not _disjoint(first, second):
                        raise SchemaError("'oneOf' whose branches may overlap is not supported (use anyOf, or tell "
                                          "the branches apart by type, const or a constant property)", where)
        return _Choice(nodes)

    def typed(self, schema: dict, kind: str, path: str, depth: int, ref_depth: int) -> _Node:
        if kind == "null":
            return _Null()
        if kind == "boolean":
            return _Boolean()
        if kind == "string":
            return self.string(schema, path)
        if kind == "integer":
            return self.integer(schema, path)
        if kind == "number":
            return self.number(schema, path)
        if kind == "array":
            return self.array(schema, path, depth, ref_depth)
        return self.object(schema, path, depth, ref_depth)

    def string(self, schema: dict, path: str) -> _Node:
        low = _count(schema, "minLength", path, 0)
        high = _count(schema, "maxLength", path, INF)
        if low > high:
            return _Never()
        fmt = schema.get("format")
        if fmt is not None and (not isinstance(fmt, str) or fmt not in _FORMATS):
            raise SchemaError(f"format '{fmt}' is not supported; supported: {', '.join(_FORMATS)}",
                              _join(path, "format"))
        if fmt is not None and ("minLength" in schema or "maxLength" in schema):
            raise SchemaError("'format' with minLength or maxLength is not supported", path)
        return _String(int(low), high, fmt)

    def bounds(self, schema: dict, path: str) -> tuple[float, bool, float, bool]:
        low, low_open, high, high_open = -INF, False, INF, False
        for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            value = schema.get(keyword)
            if value is None:
                continue
            if isinstance(value, bool):  # draft 4: exclusiveMinimum: true makes minimum exclusive
                if keyword == "exclusiveMinimum":
                    low_open = low_open or value
                elif keyword == "exclusiveMaximum":
                    high_open = high_open or value
                else:
                    raise SchemaError(f"'{keyword}' must be a number", _join(path, keyword))
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SchemaError(f"'{keyword}' must be a finite number", _join(path, keyword))
            if keyword == "minimum" and value >= low:
                low = value
            elif keyword == "maximum" and value <= high:
                high = value
            elif keyword == "exclusiveMinimum" and value >= low:
                low, low_open = value, True
            elif keyword == "exclusiveMaximum" and value <= high:
                high, high_open = value, True
        return low, low_open, high, high_open

    def step(self, schema: dict, path: str) -> float | None:
        step = schema.get("multipleOf")
        if step is None:
            return None
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0 or not math.isfinite(step):
            raise SchemaError("'multipleOf' must be a number greater than 0", _join(path, "multipleOf"))
        if not math.isfinite(1e6 / step):
            raise SchemaError("'multipleOf' is too small", _join(path, "multipleOf"))
        return step

    def integer(self, schema: dict, path: str) -> _Node:
        low, low_open, high, high_open = self.bounds(schema, path)
        first = -(2**53) if low == -INF else (math.floor(low) + 1 if low_open else math.ceil(low))
        last = 2**53 if high == INF else (math.ceil(high) - 1 if high_open else math.floor(high))
        step = self.step(schema, path)
        if step is not None and step != int(step):
            raise SchemaError("'multipleOf' of an integer must be a whole number", _join(path, "multipleOf"))
        return _Integer(first, last, 1 if step is None else int(step), path)

    def number(self, schema: dict, path: str) -> _Node:
        low, low_open, high, high_open = self.bounds(schema, path)
        return _Number(low, low_open, high, high_open, self.step(schema, path), path)

    def array(self, schema: dict, path: str, depth: int, ref_depth: int) -> _Node:
        items_schema = schema.get("items", True)
        prefix_schemas = schema.get("prefixItems", [])
        if isinstance(items_schema, list):  # draft 4-2019: items as a list is a tuple
            prefix_schemas, items_schema = items_schema, True
        if not isinstance(prefix_schemas, list):
            raise SchemaError("'prefixItems' must be an array", _join(path, "prefixItems"))
        prefix = [self.compile(item, _join(path, f"prefixItems.{i}"), depth + 1, ref_depth)
                  for i, item in enumerate(prefix_schemas)]
        items = self.compile(items_schema, _join(path, "items"), depth + 1, ref_depth)
        unique = schema.get("uniqueItems", False) is True
        return _Array(prefix, items, int(_count(schema, "minItems", path, 0)), _count(schema, "maxItems", path, INF),
                      unique, path)

    def object(self, schema: dict, path: str, depth: int, ref_depth: int) -> _Node:
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise SchemaError("'properties' must be an object", _join(path, "properties"))
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(key, str) for key in required):
            raise SchemaError("'required' must be an array of strings", _join(path, "required"))
        additional_schema = schema.get("additionalProperties", schema.get("unevaluatedProperties", True))
        additional = None
        if additional_schema is not False:
            additional = self.compile(additional_schema, _join(path, "additionalProperties"), depth + 1, ref_depth)
        compiled = {key: self.compile(value, _join(path, f"properties.{key}"), depth + 1, ref_depth)
                    for key, value in properties.items()}
        needed = []
        for key in dict.fromkeys(required):
            node = compiled.get(key, additional)
            if node is None:
                raise SchemaError(f"required property '{key}' is neither listed nor allowed as additional", path)
            needed.append((key, node))
        names = {key for key, _ in needed}
        optional = [(key, node) for key, node in compiled.items() if key not in names]
        node = _Object(needed, optional, additional, int(_count(schema, "minProperties", path, 0)),
                       _count(schema, "maxProperties", path, INF), path)
        return node


def _count(schema: dict, keyword: str, path: str, default: float) -> float:
    value = schema.get(keyword)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise SchemaError(f"'{keyword}' must be a non-negative integer", _join(path, keyword))
    return int(value)


def _disjoint(first: _Node, second: _Node) -> bool:
    """Whether no instance is valid against both (decided conservatively)."""
    while isinstance(first, _Ref):
        first = first.target
    while isinstance(second, _Ref):
        second = second.target
    if first.min_chars == INF or second.min_chars == INF:
        return True
    if isinstance(first, _Values) and isinstance(second, _Values):
        return not set(first.encoded) & set(second.encoded)
    one, other = first.types(), second.types()
    if "integer" in one or "integer" in other:  # an integer is also a number
        one, other = one | ({"number"} if "integer" in one else set()), other | ({"number"} if "integer" in other else set())
    if not one & other:
        return True
    if isinstance(first, _Object) and isinstance(second, _Object):
        for key, _ in first.required:
            values, others = first.constant(key), second.constant(key)
            if values is not None and others is not None and not values & others:
                return True
    return False


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


# -- the compiled schema -----------------------------------------------------------------------


class CompiledSchema:
    """A schema read once; ``instance`` draws valid instances of it."""

    __slots__ = ("_root", "min_chars")

    def __init__(self, root: _Node) -> None:
        self._root = root
        self.min_chars = int(root.min_chars)
        """The length of the JSON text of the schema's smallest instance (an estimate for numbers)."""

    def instance(self, rng: random.Random, extra_chars: int = 400) -> object:
        """A valid instance, about ``extra_chars`` characters longer than the smallest at most."""
        return self._root.generate(rng, [float(extra_chars)])

    def instance_json(self, rng: random.Random, extra_chars: int = 400) -> str:
        """``instance`` as compact JSON text."""
        return json_text(self.instance(rng, extra_chars))


def compile_schema(schema: object, limits: SchemaLimits = DEFAULT_LIMITS) -> CompiledSchema:
    """Read ``schema`` (decoded JSON) or raise ``SchemaError`` saying what cannot be built."""
    compiler = _Compiler(schema, limits)
    try:
        root = compiler.compile(schema, "", 0, 0)
    except RecursionError:  # msgspec decoded it, so it is nested at most some hundreds deep
        raise SchemaError(f"the schema nests deeper than {limits.max_depth} levels") from None
    except SchemaError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # a value of a shape no check above foresaw
        raise SchemaError(f"the schema could not be read ({type(exc).__name__}: {exc})") from None
    if root.min_chars == INF:
        raise SchemaError("no JSON value is valid against the schema (or every one nests too deeply)")
    if root.min_chars > limits.max_instance_chars:
        raise SchemaError(f"the schema's smallest instance is longer than {limits.max_instance_chars} characters")
    return CompiledSchema(root)


def json_text(value: object) -> str:
    """``value`` as compact JSON (non-ASCII kept as is when it is valid Unicode)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate from the schema: escape it
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text


_PIECE = re.compile(r"[^\r\n\w]?[^\W\d_]+|\d{1,3}| ?[^\s\w]+[\r\n/]*|\s+|_+")
"""The pre-tokens o200k_base splits text into, for ASCII JSON (letters with one leading mark,
runs of up to three digits, runs of punctuation, spaces): most are one token each."""


def json_pieces(text: str) -> list[str]:
    """``text`` (JSON) split into the pieces fakeai streams as its tokens; they join back to ``text``.

    A run of more than three punctuation marks (``":[]},{"``) is cut every three marks. Over
    instances of varied schemas the pieces number within a few percent of the tokens o200k_base
    and cl100k_base count (``tests/test_json_instances.py`` checks it)."""
    pieces = _PIECE.findall(text)
    if any(len(piece) > 3 and not piece[-1].isalnum() for piece in pieces):
        pieces = [part for piece in pieces for part in _pairs(piece)]
    if sum(map(len, pieces)) != len(text):  # anything the pattern does not cover: one piece a character
        pieces = []
        position = 0
        for match in _PIECE.finditer(text):
            pieces.extend(text[position : match.start()])
            pieces.append(match.group())
            position = match.end()
        pieces.extend(text[position:])
    return pieces


def _pairs(piece: str) -> list[str]:
    if len(piece) <= 3 or piece[-1].isalnum() or piece.isspace():
        return [piece]
    return [piece[i : i + 3] for i in range(0, len(piece), 3)]
