"""Multipart/related bodies and Accept header negotiation for DICOMweb (PS3.18 8.7).

Real clients (Cornerstone3D's wadors loader, dicomweb-client, OHIF) split these
bodies by the boundary and read each part's Content-Type, so the framing here is
exact: CRLF line ends, a boundary that cannot occur in the parts, and a closing
delimiter. This module must never know about models, files or access.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header, e.g. multipart/related; type="application/octet-stream"."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    @property
    def part_type(self) -> str | None:
        """Return the `type` parameter of a multipart range (the media type of each part)."""
        value = self.params.get("type")
        return value.lower() if value else None

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")

    def matches(self, media_type: str) -> bool:
        """Return whether this range accepts a concrete media type (wildcards allowed)."""
        return media_type_matches(self.media_type, media_type)


def media_type_matches(pattern: str, media_type: str) -> bool:
    """Return whether `pattern` (e.g. image/*, */*) accepts `media_type`."""
    if pattern in ("*/*", "*"):
        return True
    kind, _, subtype = pattern.partition("/")
    concrete_kind, _, concrete_subtype = media_type.partition("/")
    return kind == concrete_kind and subtype in ("*", concrete_subtype)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


@functools.lru_cache(maxsize=512)
def parse_accept(header: str | None) -> tuple[MediaRange, ...]:
    """Return the Accept header's media ranges, most preferred first; an empty header accepts anything.

    Memoised: a viewer sends the same Accept header with every frame it loads.
    """
    if not header or not header.strip():
        return (MediaRange("*/*"),)
    ranges: list[tuple[float, int, MediaRange]] = []
    for position, entry in enumerate(_split_outside_quotes(header, ",")):
        pieces = [piece.strip() for piece in _split_outside_quotes(entry, ";")]
        media_type = pieces[0].lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        quality = 1.0
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    raise ValueError(f"Accept header has a malformed quality value {value!r}") from None
            elif name:
                params[name] = value
        if quality > 0:
            ranges.append((-quality, position, MediaRange(media_type, params, quality)))
    return tuple(media_range for _, _, media_range in sorted(ranges, key=lambda item: (item[0], item[1])))


def new_boundary() -> str:
    """Return a boundary random enough never to occur inside the parts."""
    return "readerboard-" + secrets.token_hex(16)


def content_type(*, part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    """Return the Content-Type header of a multipart/related response."""
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value


def part_header(*, boundary: str, part_content_type: str, location: str | None = None, first: bool = False) -> bytes:
    """Return the delimiter and headers that open one part."""
    lines = [("" if first else "\r\n") + f"--{boundary}", f"Content-Type: {part_content_type}"]
    if location:
        lines.append(f"Content-Location: {location}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def closing_delimiter(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode("ascii")


def iter_multipart(
    parts: Iterable[tuple[str, bytes | Iterable[bytes]]],
    *,
    boundary: str,
    locations: Iterable[str | None] | None = None,
) -> Iterator[bytes]:
    """Yield a multipart/related body from (part Content-Type, payload) pairs; payloads may be chunk iterables."""
    location_list = list(locations) if locations is not None else None
    for index, (part_content_type, payload) in enumerate(parts):
        location = location_list[index] if location_list else None
        yield part_header(boundary=boundary, part_content_type=part_content_type, location=location, first=index == 0)
        if isinstance(payload, bytes | bytearray | memoryview):
            yield bytes(payload)
        else:
            yield from payload
    yield closing_delimiter(boundary)


def encode_multipart(parts: list[tuple[str, bytes]], *, boundary: str) -> bytes:
    """Return a whole multipart/related body (for small responses where one buffer is fastest)."""
    return b"".join(iter_multipart(parts, boundary=boundary))


def parse_multipart(body: bytes, *, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Return the (headers, payload) of each part of a multipart body; raise ValueError if malformed."""
    delimiter = b"--" + boundary.encode("ascii")
    if not body.startswith(delimiter):
        raise ValueError("multipart body does not start with its boundary")
    parts = []
    for chunk in body.split(b"\r\n" + delimiter)[0:]:
        if chunk.startswith(delimiter):
            chunk = chunk[len(delimiter) :]
        if chunk.startswith(b"--"):
            break
        if not chunk.startswith(b"\r\n"):
            raise ValueError("multipart delimiter is not followed by CRLF")
        head, separator, payload = chunk[2:].partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("multipart part has no blank line after its headers")
        headers = {}
        for line in head.decode("ascii").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload))
    if not body.rstrip(b"\r\n").endswith(delimiter + b"--"):
        raise ValueError("multipart body has no closing delimiter")
    return parts
