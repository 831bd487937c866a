"""Reading an inference body: bounded in size; gzip or deflate undone (tritonclient sends both)."""

from __future__ import annotations

import zlib

from fastapi import Request

from services.common.bodies import read_bounded
from services.common.models import ModelError


class RequestTooLarge(ModelError):
    """The body (or what it inflates to) is over the server's limit: HTTP 413."""


class UnsupportedEncoding(ModelError):
    """A Content-Encoding other than identity, gzip or deflate: HTTP 415."""


# zlib's wbits: 16 + MAX_WBITS reads a gzip wrapper, MAX_WBITS a zlib one ("deflate" in HTTP).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


async def read_body(request: Request, limit: int) -> bytes:
    """The body as sent, refused as soon as it passes `limit` bytes; then inflated, also bounded."""
    body = await read_bounded(request, limit, RequestTooLarge)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _WBITS:
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported; "
                                  "use gzip, deflate or none")
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise UnsupportedEncoding(f"the body is not valid {encoding}: {exc}") from exc
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise RequestTooLarge(f"the body inflates to over {limit} bytes")
    return inflated
