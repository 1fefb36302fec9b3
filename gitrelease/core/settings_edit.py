"""Changing settings: text from a person parsed to the schema's type, written to
``data/settings.toml`` with its comments kept (tomlkit), atomically, mode 0600.

`reset` removes the runtime override so the lower layer (``[tool.gitrelease]`` of the
release, else the default) shows through.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from gitrelease.core.errors import InvalidInput, InvalidSetting
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.settings import (
    CATEGORIES,
    SettingSpec,
    is_secret,
    load_settings,
    schema,
)
from gitrelease.core.toml_errors import toml_problem

__all__ = ["SettingChange", "change_setting", "parse_value", "spec_for"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class SettingChange:
    category: str
    name: str
    previous: Any
    new: Any
    source: str  # where the value in force now comes from

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "name": self.name, "previous": self.previous,
                "new": self.new, "source": self.source}


def spec_for(category: str, name: str) -> SettingSpec:
    """The setting `name` of `category`, or a clear error with the nearest names."""
    if category not in CATEGORIES:
        raise InvalidInput("setting_category", category, CATEGORIES)
    specs = schema()
    spec = specs.get(name)
    if spec is None or spec.category != category:
        in_category = [n for n, s in specs.items() if s.category == category]
        close = difflib.get_close_matches(name, in_category, n=3) or in_category[:8]
        where = f" (it is in category {spec.category!r})" if spec is not None else ""
        raise InvalidInput("setting_name", name, close,
                           reason=f"no such setting in {category!r}{where}")
    return spec


def parse_value(spec: SettingSpec, text: str) -> Any:
    """A person's text as the setting's type, then checked against the schema. A refused
    command's text is never repeated: commands may carry tokens."""
    try:
        value = _convert(spec, text.strip())
        try:
            return spec.validate(value, "the new value")
        except InvalidSetting:
            raise InvalidInput("setting_value", text, spec.allowed()) from None
    except InvalidInput as exc:
        if not is_secret(spec.name):
            raise
        raise InvalidInput("setting_value", "(not shown)", exc.allowed,
                           reason=exc.reason) from None


def _convert(spec: SettingSpec, text: str) -> Any:
    kind = spec.type
    origin = typing.get_origin(kind)
    if kind is bool:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise InvalidInput("setting_value", text, "true or false")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise InvalidInput("setting_value", text, spec.allowed()) from None
    if origin in (list, dict):
        return _structured(spec, text)
    if isinstance(kind, types.UnionType):  # a command: a JSON array, or one string
        return _structured(spec, text) if text.startswith("[") else text
    return text


def _structured(spec: SettingSpec, text: str) -> Any:
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError:
            raise InvalidInput("setting_value", text, spec.allowed(),
                               reason="not valid JSON") from None
    item = typing.get_args(spec.type)[0] if typing.get_origin(spec.type) is list else str
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if item is int:
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise InvalidInput("setting_value", text, spec.allowed()) from None
    return parts


def change_setting(
    root: Path, data_dir: Path, category: str, name: str, value: str | None
) -> SettingChange:
    """Set (or with `value` None, reset) one runtime setting; returns before and after."""
    spec = spec_for(category, name)
    new_value = parse_value(spec, value) if value is not None else None
    before = load_settings(root, data_dir)
    path = data_dir / "settings.toml"
    # load_settings has read it already: what fails here is what tomlkit alone refuses.
    text = path.read_text() if path.exists() else ""
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        problem = toml_problem(text, exc)
        raise InvalidSetting(str(path), None, f"cannot be edited: not valid TOML {problem}"
                             ) from None
    if new_value is None:
        document.pop(name, None)
    else:
        document[name] = new_value
    atomic_write(path, tomlkit.dumps(document).encode(), mode=0o600)
    after = load_settings(root, data_dir)
    return SettingChange(category, name, before.settings.get(name), after.settings.get(name),
                         after.sources[name])
