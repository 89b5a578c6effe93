"""A new variant's page parameters, from a template and what the marketer typed.

The template is another variant's params (the experiment's control by default), so
a new variant keeps the brand, form and thank-you page and changes only what the
marketer gives. The result is validated with ``croupier.variants.params`` before anything
is deployed, and written under ``variants/experiments/<experiment>/<id>.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from croupier.scripts.processes import ROOT
from croupier.variants.params import InvalidParams, parse_params

PARAMS_DIR = ROOT / "variants" / "experiments"
COLOR_NAMES = ("primary", "background", "text", "accent")
# params field → the flag that sets it, so a validation error names what to fix on the command line
FLAGS = {"headline": "--headline", "subheadline": "--subheadline", "copy": "--copy", "cta": "--cta",
         "name": "--name", "brand": "--brand", "badge": "--badge", "image": "--image",
         "image_alt": "--image-alt", "copy_style": "--copy-style", "id": "--id",
         **{f"colors.{c}": f"--{c}" for c in COLOR_NAMES}}


@dataclass
class PageChanges:
    """What the marketer gave; ``None`` keeps the template's value."""

    headline: str | None = None
    subheadline: str | None = None
    copy: list[str] | None = None
    copy_style: str | None = None
    cta: str | None = None
    name: str | None = None
    brand: str | None = None
    badge: str | None = None
    image: str | None = None
    image_alt: str | None = None
    colors: dict[str, str] = field(default_factory=dict)


def params_path(experiment: str, variant_id: str, root: Path = PARAMS_DIR) -> Path:
    return root / experiment / f"{variant_id}.json"


def load_template(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidParams(f"{path}: cannot read template ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise InvalidParams(f"{path}: template is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidParams(f"{path}: template must be a JSON object")
    return data


def build_params(template: dict[str, Any], experiment: str, variant_id: str, changes: PageChanges) -> dict:
    """The template with the changes applied, validated; ``InvalidParams`` names the flag at fault."""
    params = dict(template)
    params.update(id=variant_id, experiment=experiment)
    for name in ("headline", "subheadline", "copy", "copy_style", "cta", "name", "brand", "badge",
                 "image", "image_alt"):
        value = getattr(changes, name)
        if value is not None:
            params[name] = value
    if changes.name is None:
        # the template's name describes the template's page, not this one
        params["name"] = changes.headline or params.get("headline", variant_id)
        params["name"] = params["name"][:80]
    if changes.colors:
        params["colors"] = {**params.get("colors", {}), **changes.colors}
    try:
        parse_params(params)
    except InvalidParams as exc:
        raise InvalidParams(_with_flag(str(exc))) from None
    return params


def _with_flag(message: str) -> str:
    where = message.split(":", 1)[0]
    flag = FLAGS.get(where) or FLAGS.get(where.split("[", 1)[0])
    return f"{message} ({flag})" if flag else message


def write_params(path: Path, params: dict) -> None:
    """Create the file; refuses to overwrite, because the file may belong to a variant still running."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as out:
        json.dump(params, out, indent=2, ensure_ascii=False)
        out.write("\n")
