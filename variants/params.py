"""A variant's parameters: the JSON a marketer writes, validated into ``VariantParams``.

Every error is an ``InvalidParams`` whose message starts with the field it is
about (``colors.primary: ...``), and, when read from a file, with the file, so a
typo is fixed without reading this code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from croupier.router.rules import GOAL, ID, Rule
from croupier.variants.colors import HEX_COLOR
from croupier.variants.illustrations import ILLUSTRATIONS

# Raster images and SVG, base64 only: an <img> never runs script from these.
DATA_URI = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}")
MAX_IMAGE_CHARS = 200_000
MAX_COPY_ITEMS = 8
COPY_STYLES = ("bullets", "paragraphs")


class InvalidParams(ValueError):
    """A params file the server cannot render; the message names the field."""


@dataclass(frozen=True)
class Colors:
    primary: str = "#1f7a5c"
    background: str = "#fbfaf6"
    text: str = "#1d2733"
    accent: str = "#f4b942"


@dataclass(frozen=True)
class Price:
    amount: str
    period: str = ""
    was: str = ""
    note: str = ""


@dataclass(frozen=True)
class Testimonial:
    quote: str
    author: str
    role: str = ""


@dataclass(frozen=True)
class SignupForm:
    heading: str = "Get started"
    placeholder: str = "you@example.com"
    button: str = "Sign me up"
    note: str = ""


@dataclass(frozen=True)
class ThankYou:
    headline: str = "You're on the list!"
    body: str = "Thanks for signing up. We'll be in touch soon."


@dataclass(frozen=True)
class VariantParams:
    id: str
    headline: str
    cta: str
    experiment: str = ""
    name: str = ""
    brand: str = ""
    badge: str = ""
    subheadline: str = ""
    copy: tuple[str, ...] = ()
    copy_style: str = "bullets"
    colors: Colors = field(default_factory=Colors)
    image: str = ""
    image_alt: str = ""
    price: Price | None = None
    testimonial: Testimonial | None = None
    form: SignupForm = field(default_factory=SignupForm)
    goal: str = "signup"
    thanks: ThankYou = field(default_factory=ThankYou)

    @property
    def illustration(self) -> str:
        """The built-in illustration's name, or "" when ``image`` is a data: URI or unset."""
        return self.image if self.image in ILLUSTRATIONS else ""


def _fail(label: str, problem: str) -> NoReturn:
    raise InvalidParams(f"{label}: {problem}")


def _object(data: Any, label: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        _fail(label or "params", f"must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"{label}." if label else ""
        _fail(f"{prefix}{unknown[0]}", f"unknown field (expected one of: {', '.join(sorted(allowed))})")
    return data


def _text(data: dict[str, Any], name: str, label: str, *, max_len: int,
          required: bool = False, default: str = "") -> str:
    where = f"{label}.{name}" if label else name
    if name not in data:
        if required:
            _fail(where, "is required")
        return default
    value = data[name]
    if not isinstance(value, str):
        _fail(where, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        _fail(where, "must not be empty")
    if len(value) > max_len:
        _fail(where, f"must be at most {max_len} characters, got {len(value)}")
    return value


def _slug(data: dict[str, Any], name: str, rule: Rule, *, required: bool = False, default: str = "") -> str:
    value = _text(data, name, "", max_len=40, required=required, default=default)
    if value and not rule.ok(value):
        _fail(name, f"{rule.message}, got {value!r}")
    return value


def _copy(data: dict[str, Any]) -> tuple[str, ...]:
    raw = data.get("copy", [])
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        _fail("copy", "must be a list of strings (paragraphs or bullet points)")
    if len(items) > MAX_COPY_ITEMS:
        _fail("copy", f"at most {MAX_COPY_ITEMS} items, got {len(items)}")
    return tuple(_copy_item(item, i) for i, item in enumerate(items))


def _copy_item(item: Any, index: int) -> str:
    if not isinstance(item, str) or not item.strip():
        _fail(f"copy[{index}]", "must be a non-empty string")
    if len(item) > 600:
        _fail(f"copy[{index}]", f"must be at most 600 characters, got {len(item)}")
    return item.strip()


def _colors(data: dict[str, Any]) -> Colors:
    raw = _object(data.get("colors", {}), "colors", {"primary", "background", "text", "accent"})
    defaults = Colors()
    values = {}
    for name in ("primary", "background", "text", "accent"):
        value = raw.get(name, getattr(defaults, name))
        if not isinstance(value, str) or not HEX_COLOR.fullmatch(value):
            _fail(f"colors.{name}", f"must be a colour like '#1f7a5c', got {value!r}")
        values[name] = value.lower()
    return Colors(**values)


def _image(data: dict[str, Any]) -> str:
    value = data.get("image", "")
    if not isinstance(value, str):
        _fail("image", f"must be a string, got {type(value).__name__}")
    if value == "" or value in ILLUSTRATIONS:
        return value
    if value.startswith("data:"):
        if len(value) > MAX_IMAGE_CHARS:
            _fail("image", f"data: URI must be at most {MAX_IMAGE_CHARS} characters, got {len(value)}")
        if not DATA_URI.fullmatch(value):
            _fail("image", "data: URI must be base64 PNG, JPEG, GIF, WebP or SVG "
                           "(data:image/png;base64,...)")
        return value
    _fail("image", f"must be one of {', '.join(sorted(ILLUSTRATIONS))} or a data:image/... URI, "
                   f"got {value[:40]!r}")


def _price(data: dict[str, Any]) -> Price | None:
    raw = data.get("price")
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"amount": raw}
    raw = _object(raw, "price", {"amount", "period", "was", "note"})
    return Price(
        amount=_text(raw, "amount", "price", max_len=24, required=True),
        period=_text(raw, "period", "price", max_len=24),
        was=_text(raw, "was", "price", max_len=24),
        note=_text(raw, "note", "price", max_len=120),
    )


def _testimonial(data: dict[str, Any]) -> Testimonial | None:
    raw = data.get("testimonial")
    if raw is None:
        return None
    raw = _object(raw, "testimonial", {"quote", "author", "role"})
    return Testimonial(
        quote=_text(raw, "quote", "testimonial", max_len=400, required=True),
        author=_text(raw, "author", "testimonial", max_len=60, required=True),
        role=_text(raw, "role", "testimonial", max_len=80),
    )


def _form(data: dict[str, Any]) -> SignupForm:
    raw = _object(data.get("form", {}), "form", {"heading", "placeholder", "button", "note"})
    d = SignupForm()
    return SignupForm(
        heading=_text(raw, "heading", "form", max_len=80, default=d.heading) or d.heading,
        placeholder=_text(raw, "placeholder", "form", max_len=60, default=d.placeholder),
        button=_text(raw, "button", "form", max_len=40, default=d.button) or d.button,
        note=_text(raw, "note", "form", max_len=160),
    )


def _thanks(data: dict[str, Any]) -> ThankYou:
    raw = _object(data.get("thanks", {}), "thanks", {"headline", "body"})
    d = ThankYou()
    return ThankYou(
        headline=_text(raw, "headline", "thanks", max_len=120, default=d.headline) or d.headline,
        body=_text(raw, "body", "thanks", max_len=400, default=d.body),
    )


FIELDS = {"id", "experiment", "name", "brand", "badge", "headline", "subheadline", "copy", "copy_style",
          "cta", "colors", "image", "image_alt", "price", "testimonial", "form", "goal", "thanks"}


def parse_params(data: Any) -> VariantParams:
    """Validate a decoded params object; raises ``InvalidParams`` naming the first bad field."""
    data = _object(data, "", FIELDS)
    copy_style = data.get("copy_style", "bullets")
    if copy_style not in COPY_STYLES:
        _fail("copy_style", f"must be one of {', '.join(COPY_STYLES)}, got {copy_style!r}")
    return VariantParams(
        id=_slug(data, "id", ID, required=True),
        headline=_text(data, "headline", "", max_len=140, required=True),
        cta=_text(data, "cta", "", max_len=40, required=True),
        experiment=_slug(data, "experiment", ID),
        name=_text(data, "name", "", max_len=80),
        brand=_text(data, "brand", "", max_len=40),
        badge=_text(data, "badge", "", max_len=60),
        subheadline=_text(data, "subheadline", "", max_len=300),
        copy=_copy(data),
        copy_style=copy_style,
        colors=_colors(data),
        image=_image(data),
        image_alt=_text(data, "image_alt", "", max_len=140),
        price=_price(data),
        testimonial=_testimonial(data),
        form=_form(data),
        goal=_slug(data, "goal", GOAL, default="signup"),
        thanks=_thanks(data),
    )


def read_json(path: str | Path, what: str = "params file") -> Any:
    """A JSON file's content; ``InvalidParams`` starting with the file's path when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidParams(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InvalidParams(f"{path}: {what} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParams(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def load_params(path: str | Path) -> VariantParams:
    """Read and validate a params file; errors start with the file's path."""
    data = read_json(path)
    try:
        return parse_params(data)
    except InvalidParams as exc:
        raise InvalidParams(f"{path}: {exc}") from None
