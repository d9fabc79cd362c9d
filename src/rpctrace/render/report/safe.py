"""Text from a trace made safe to show: invisible characters visible, lengths bounded, and SVG
elements built from escaped parts (see the package docstring for the page's defences)."""

from __future__ import annotations

import re
from typing import Any, Iterable

from markupsafe import Markup, escape

MAX_TEXT = 4000
# C0/C1 controls (but tab/newline), zero-width and bidi controls, BOM, lone surrogates
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def defang(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as text that displays as what it is: invisible and direction-changing characters
    shown as ``\\uXXXX``, and at most ``limit`` characters (the rest counted)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters)"
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` value: None prints as nothing, text is defanged (then autoescaped)."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value  # built by this module from escaped parts (the SVG) or our constant CSS/JS
    if isinstance(value, str):
        return defang(value)
    return value


def _short(text: str | None, n: int) -> str:
    text = "" if text is None else defang(text)
    return text if len(text) <= n else text[: max(1, n - 1)] + "…"


def _el(tag: str, text: Any = None, children: Iterable[str] = (), **attrs: Any) -> str:
    """One SVG element; attribute names come from this module, every value and text is escaped."""
    parts = [f"<{tag}"]
    for name, value in attrs.items():
        if value is None:
            continue
        parts.append(f' {name.rstrip("_").replace("_", "-")}="{escape(defang(value))}"')
    body = "".join(children)
    if text is not None:
        body += str(escape(defang(text)))
    if not body:
        return "".join(parts) + "/>"
    return "".join(parts) + ">" + body + f"</{tag}>"


def _wrap(text: str, width: int, max_lines: int = 4) -> list[str]:
    """Split a long label (a registry path) into lines of at most ``width``, at backslashes when
    possible."""
    text = defang(text)
    lines: list[str] = []
    while text and len(lines) < max_lines:
        if len(text) <= width:
            lines.append(text)
            text = ""
            break
        cut = text.rfind("\\", 0, width)
        if cut < width // 3:
            cut = width
        lines.append(text[:cut])
        text = text[cut:]
    if text:
        lines[-1] = lines[-1][: max(1, width - 1)] + "…"
    return lines or [""]


