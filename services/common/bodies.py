"""Reading a request body bounded in bytes: refused by its Content-Length, or while it streams."""

from __future__ import annotations

from fastapi import Request


async def read_bounded(request: Request, limit: int, too_large: type[Exception]) -> bytes:
    """The body as sent; `too_large(message)` is raised as soon as it is known to pass `limit`
    (each service raises its own error type, mapped to 413 in one place)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f"the body has {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
