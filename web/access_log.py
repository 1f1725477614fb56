"""gunicorn's access log with every field escaped, so no request can forge a line.

gunicorn writes the decoded path, so ``GET /x%0A127.0.0.1 "GET /admin"...``
would otherwise print a second, made-up line. Control characters (C0, DEL,
C1 and the Unicode line and paragraph separators) become ``\\xNN`` or
``\\uNNNN`` escapes and a backslash is doubled, so that the request cannot
fake an escape either; gunicorn itself escapes double quotes. Set in
``web/gunicorn.conf.py`` as ``logger_class``.
"""

from __future__ import annotations

from typing import Any

from gunicorn import glogging  # type: ignore[import-untyped]


def _escapes() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
    table.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
    # gunicorn escapes a double quote itself.
    table[ord("\\")] = "\\\\"
    return table


ESCAPES = _escapes()


def escape(value: str) -> str:
    """``value`` with every character that could break or fake a log line escaped."""
    return value.translate(ESCAPES)


class SafeAccessLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, whose access-log atoms hold no raw control character."""

    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any
    ) -> dict[str, Any]:
        found: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {
            name: escape(value) if isinstance(value, str) else value
            for name, value in found.items()
        }
