"""Colours of a variant: parsing ``#rrggbb`` and picking readable text on top of one."""

from __future__ import annotations

import re

HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """Relative luminance as WCAG 2 defines it (0 black .. 1 white)."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)


def contrast_ratio(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable_on(background: str, light: str = "#ffffff", dark: str = "#111827") -> str:
    """The text colour (light or dark) with the better contrast on ``background``.

    Marketers pick button colours; this keeps the button's label legible whatever they pick.
    """
    return light if contrast_ratio(background, light) >= contrast_ratio(background, dark) else dark
