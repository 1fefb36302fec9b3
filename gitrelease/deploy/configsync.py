"""Config templates against the live, untracked config: what drifted, and a merge that adds.

Pairs come from the `config_templates` setting (``.env.example`` -> ``.env``, ...). A check
names keys only, never values: live config files hold secrets. A merge adds the keys the
template has and the live file lacks, with the template's default, and changes nothing else:
the operator's values, comments and order stay as they are (tomlkit for TOML; lines kept
verbatim for ``.env``). It writes atomically and keeps the live file's mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.text import ENV_LINE, env_values
from gitrelease.git.repo import GitRepo

__all__ = ["ConfigDrift", "ConfigError", "check_config", "merge_config"]



class ConfigError(GitReleaseError):
    code = "config_error"
    exit_code = 21


@dataclass
class ConfigDrift:
    template: str
    live: str
    live_exists: bool
    added_in_target: list[str] = field(default_factory=list)
    removed_in_target: list[str] = field(default_factory=list)
    missing_in_live: list[str] = field(default_factory=list)
    unknown_in_live: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added_in_target or self.removed_in_target or self.missing_in_live)

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "live": self.live, "live_exists": self.live_exists,
                "added_in_target": self.added_in_target,
                "removed_in_target": self.removed_in_target,
                "missing_in_live": self.missing_in_live, "unknown_in_live": self.unknown_in_live}


def _is_toml(name: str) -> bool:
    return name.endswith(".toml")


def keys_of(text: str, toml: bool) -> dict[str, Any]:
    """Keys in file order ("section.key" for TOML) with their values."""
    if not toml:
        return dict(env_values(text))
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}

    def walk(table: Any, prefix: str) -> None:
        for key, value in table.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}.")
            else:
                flat[name] = value
    walk(document, "")
    return flat


def check_config(
    repo: GitRepo, root: Path, templates: dict[str, str], current: str, target: str
) -> list[ConfigDrift]:
    """Each template pair that exists at either commit, compared with the live file."""
    drifts = []
    for template, live in templates.items():
        old = repo.show_file(current, template)
        new = repo.show_file(target, template)
        if old is None and new is None:
            continue
        toml = _is_toml(template)
        old_keys = keys_of(old.decode("utf-8", "replace"), toml) if old is not None else {}
        new_keys = keys_of(new.decode("utf-8", "replace"), toml) if new is not None else {}
        live_path = root / live
        try:
            live_keys = keys_of(live_path.read_text(), toml) if live_path.is_file() else {}
        except ConfigError as exc:
            raise ConfigError(f"{live}: {exc.message}") from None
        drifts.append(ConfigDrift(
            template, live, live_path.is_file(),
            added_in_target=[k for k in new_keys if k not in old_keys],
            removed_in_target=[k for k in old_keys if k not in new_keys],
            missing_in_live=[k for k in new_keys if k not in live_keys],
            unknown_in_live=[k for k in live_keys if k not in new_keys]))
    return drifts


def merge_config(repo: GitRepo, root: Path, templates: dict[str, str], commit: str) -> list[str]:
    """Add missing keys from the templates at `commit` to the live files; returns what it
    added as "file: key" (names only)."""
    added: list[str] = []
    for template, live in templates.items():
        raw = repo.show_file(commit, template)
        if raw is None:
            continue
        text = raw.decode("utf-8", "replace")
        path = root / live
        if path.is_symlink() and path.resolve().is_file():
            path = path.resolve()  # the operator's link stays a link
        current = path.read_text() if path.is_file() else ""
        toml = _is_toml(template)
        merged, keys = (_merge_toml if toml else _merge_env)(current, text, template)
        if keys:
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
            atomic_write(path, merged.encode(), mode=mode)
            added += [f"{live}: {key}" for key in keys]
    return added


def _merge_env(live: str, template: str, name: str) -> tuple[str, list[str]]:
    have = keys_of(live, False)
    lines = [line for line in template.splitlines()
             if (m := ENV_LINE.match(line)) and not line.lstrip().startswith("#")
             and m.group(1) not in have]
    if not lines:
        return live, []
    keys = [m.group(1) for line in lines if (m := ENV_LINE.match(line))]
    prefix = live if not live or live.endswith("\n") else live + os.linesep
    addition = f"# added by gitrelease from {name}\n" + "\n".join(lines) + "\n"
    return prefix + addition, keys


def _merge_toml(live: str, template: str, name: str) -> tuple[str, list[str]]:
    try:
        document = tomlkit.parse(live)
        source = tomlkit.parse(template)
    except TOMLKitError as exc:
        raise ConfigError(f"cannot merge {name}: not valid TOML: {exc}") from None
    added: list[str] = []

    def merge(into: Any, source_table: Any, prefix: str) -> None:
        for key, value in source_table.items():
            if key not in into:
                into[key] = value
                added.append(f"{prefix}{key}")
            elif isinstance(value, dict) and isinstance(into[key], dict):
                merge(into[key], value, f"{prefix}{key}.")
    merge(document, source, "")
    return tomlkit.dumps(document), added
