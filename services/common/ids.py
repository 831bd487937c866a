"""Opaque ids: what every entity id may hold, and how ids sit inside Redis keys and members.

An id (a user, title, card, merchant, device, experiment unit, transaction, event) is whatever
the client calls it: 1 to 128 characters of any Unicode except control characters (C0, DEL, C1)
and lone surrogates, which cannot be encoded as UTF-8. `user_123`, a UUID, an e-mail address,
`a|b{c}:d/e` and `Zoë` are all ids. Nothing downstream may assume a shape.

Two places give characters a meaning, so ids are escaped there, and only there:
- a Redis Cluster hash tag is the text between the first `{` and the next `}` of a key; an id
  with braces would cut its tag short and share a slot (or a key) with another id;
- a sorted-set member that packs fields joins them with `|`.
`escape` percent-encodes `%`, `{`, `}` and `|` (and nothing else, so ordinary ids read as they
are); it is injective, and `unescape` reverses it exactly. `hash_tag(id)` is `{escape(id)}`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_ID_LENGTH = 128
# Control characters (Cc: U+0000-U+001F, U+007F-U+009F). A lone surrogate never gets this far:
# pydantic refuses it as "not a valid string" (it cannot be UTF-8).
OPAQUE_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
OPAQUE_ID_RULE = f"1 to {MAX_ID_LENGTH} characters, any Unicode except control characters"


# What no id holds: the pattern's control characters, and surrogates (which a Python string
# can carry when it did not come through pydantic).
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
FIELD_SEPARATOR = "|"
_ESCAPES = {"%": "%25", "{": "%7B", "}": "%7D", "|": "%7C"}
_RESERVED = frozenset(_ESCAPES)
_TABLE = str.maketrans(_ESCAPES)
_UNESCAPES = {code: ch for ch, code in _ESCAPES.items()}
_ESCAPED = re.compile("|".join(_UNESCAPES))


class InvalidId(ValueError):
    """Not an opaque id: empty, too long, or holding a control character or a surrogate."""


def _no_control_characters(value: str) -> str:
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise ValueError(f"an id may not hold a control character (U+{ord(bad.group()):04X} at "
                         f"position {bad.start()})")
    return value


def check_id(value: str) -> str:
    """`value` if it is an opaque id, else InvalidId saying why (the schema's rule, for ids
    that did not come through a schema)."""
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidId(f"an id of {len(value)} characters: an id has {OPAQUE_ID_RULE}")
    try:
        return _no_control_characters(value)
    except ValueError as exc:
        raise InvalidId(f"{exc}: an id has {OPAQUE_ID_RULE}") from None


OpaqueId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH,
                                description=f"an opaque id: {OPAQUE_ID_RULE}",
                                json_schema_extra={"pattern": OPAQUE_ID_PATTERN}),
                     AfterValidator(_no_control_characters)]
"""The type of every id field: the schema carries the pattern, errors say which character."""


def escape(value: str) -> str:
    """The id with `%`, `{`, `}` and `|` percent-encoded; ids without them come back as is."""
    if _RESERVED.isdisjoint(value):
        return value
    return value.translate(_TABLE)


def unescape(value: str) -> str:
    """The inverse of `escape`."""
    if "%" not in value:
        return value
    return _ESCAPED.sub(lambda m: _UNESCAPES[m.group(0)], value)


def hash_tag(entity_id: str) -> str:
    """`{<escaped id>}`: the id's own Redis Cluster hash tag, never cut short by a brace in it."""
    return f"{{{escape(entity_id)}}}"


def event_id(prefix: str, entity_id: str) -> str:
    """`<prefix>:<id>`, or `<prefix>:sha256:<digest of the id>` where that would be over
    MAX_ID_LENGTH: an event id derived from an opaque id is itself a valid id, and still one per
    entity (a redelivery keeps its id)."""
    readable = f"{prefix}:{entity_id}"
    if len(readable) <= MAX_ID_LENGTH:
        return readable
    return f"{prefix}:sha256:{hashlib.sha256(entity_id.encode()).hexdigest()[:32]}"
