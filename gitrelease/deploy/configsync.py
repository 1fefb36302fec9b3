"""Config templates against the live, untracked config: what drifted, and a merge that adds.

Pairs come from the `config_templates` setting (``.env.example`` -> ``.env``, ...). A check
names keys only, never values: live config files hold secrets. A merge adds the keys the
template has and the live file lacks, with the template's default, and changes nothing else:
the operator's values, comments and order stay as they are (tomlkit for TOML; lines kept
verbatim for ``.env``). It writes atomically and keeps the live file's mode.

A merge never invents a value. A key whose value is a placeholder is added as the template
has it (so the bot finds the key) and reported as "needs your value", in check and in the
install's result; so is a key the live file already has with a placeholder or empty value
(read to judge, never shown). The rule (`is_placeholder`), after quotes and spaces are taken
off the value:

- empty: ``TOKEN=``, ``token = ""``;
- in angle brackets: ``<your token>``, ``<id>``;
- filler only, three or more: ``xxx``, ``XXXXXX``, ``***``, ``...``, ``???``;
- in words (runs of letters and digits, case ignored): the first word is "your"
  (``YOUR_BOT_PREFIX_HERE``, ``your-token-here``), or "your" comes before a last word "here"
  (``put your token here``), or a one-word-run value ends in "here" (``TOKEN_HERE``), or a word
  is one of todo, fixme, tbd, placeholder, changeme, replaceme, or the words run together are
  changeme, replaceme, changethis, replacethis, fillmein, setme (``CHANGE_ME``, ``replace-me``).

Only string values can be placeholders: numbers and booleans in TOML are values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.text import ENV_LINE, env_values
from gitrelease.core.toml_errors import toml_problem
from gitrelease.git.repo import GitRepo

__all__ = ["NEEDS_VALUE", "ConfigDrift", "ConfigError", "check_config", "is_placeholder",
           "merge_config"]

#: How `merge_config` marks an added key that still needs the operator's value.
NEEDS_VALUE = "(needs your value)"

_FILLER = re.compile(r"^[xX*.?_-]{3,}$")
_BRACKETED = re.compile(r"^<[^<>]*>$")
_WORDS = re.compile(r"[a-z0-9]+")
_MARKER_WORDS = frozenset({"todo", "fixme", "tbd", "placeholder", "changeme", "replaceme"})
_MARKER_RUNS = frozenset({"changeme", "replaceme", "changethis", "replacethis", "fillmein",
                          "setme"})


def is_placeholder(value: Any) -> bool:
    """Whether a config value stands for "put yours here" (the rule is the module's doc)."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if not text or _FILLER.match(text) or _BRACKETED.match(text):
        return True
    words = _WORDS.findall(text.lower())
    if not words:
        return False
    return (words[0] == "your"
            or (words[-1] == "here" and ("your" in words or (len(words) > 1 and " " not in text)))
            or any(word in _MARKER_WORDS for word in words)
            or "".join(words) in _MARKER_RUNS)


def env_value(raw: str) -> str:
    """The value of a `.env` line's right-hand side: quotes taken off, or a trailing
    ` # comment` cut."""
    text = raw.strip()
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        return text[1:end] if end > 0 else text[1:]
    return re.split(r"\s+#", text, maxsplit=1)[0].strip()


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
    # Keys of the target's template whose live value would be a placeholder or empty: the
    # operator has to set them (names only: the live values are never kept here).
    needs_value: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added_in_target or self.removed_in_target or self.missing_in_live)

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "live": self.live, "live_exists": self.live_exists,
                "added_in_target": self.added_in_target,
                "removed_in_target": self.removed_in_target,
                "missing_in_live": self.missing_in_live, "unknown_in_live": self.unknown_in_live,
                "needs_value": self.needs_value}


def _is_toml(name: str) -> bool:
    return name.endswith(".toml")


def keys_of(text: str, toml: bool) -> dict[str, Any]:
    """Keys in file order ("section.key" for TOML) with their values (for `.env`, as
    `env_value` reads them)."""
    if not toml:
        return {key: env_value(raw) for key, raw in env_values(text).items()}
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"not valid TOML {toml_problem(text, exc)}") from None
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
            raise ConfigError(f"{live} is {exc.message}") from None
        drifts.append(ConfigDrift(
            template, live, live_path.is_file(),
            added_in_target=[k for k in new_keys if k not in old_keys],
            removed_in_target=[k for k in old_keys if k not in new_keys],
            missing_in_live=[k for k in new_keys if k not in live_keys],
            unknown_in_live=[k for k in live_keys if k not in new_keys],
            # A merge would add a missing key with the template's value, else the live one
            # stays: either way, a placeholder there is the operator's to replace.
            needs_value=[k for k, v in new_keys.items()
                         if is_placeholder(live_keys.get(k, v))]))
    return drifts


def merge_config(repo: GitRepo, root: Path, templates: dict[str, str], commit: str) -> list[str]:
    """Add missing keys from the templates at `commit` to the live files; returns what it
    added as "file: key" (names only), "file: key (needs your value)" where the template's
    value is a placeholder: added as the template has it, for the operator to set."""
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
        merged, keys = (_merge_toml if toml else _merge_env)(current, text, template, live)
        if keys:
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
            atomic_write(path, merged.encode(), mode=mode)
            added += [f"{live}: {key}" + (f" {NEEDS_VALUE}" if is_placeholder(value) else "")
                      for key, value in keys.items()]
    return added


def _merge_env(live: str, template: str, name: str, _live_name: str
               ) -> tuple[str, dict[str, Any]]:
    """The live text with the template's missing lines appended, and the keys added with
    their template values."""
    have = keys_of(live, False)
    lines = [line for line in template.splitlines()
             if (m := ENV_LINE.match(line)) and not line.lstrip().startswith("#")
             and m.group(1) not in have]
    if not lines:
        return live, {}
    keys: dict[str, Any] = {}
    for line in lines:
        if m := ENV_LINE.match(line):
            keys.setdefault(m.group(1), env_value(m.group(2)))
    prefix = live if not live or live.endswith("\n") else live + os.linesep
    addition = f"# added by gitrelease from {name}\n" + "\n".join(lines) + "\n"
    return prefix + addition, keys


def _merge_toml(live: str, template: str, name: str, live_name: str
                ) -> tuple[str, dict[str, Any]]:
    """The live document with the template's missing keys added (comments and order
    kept), and the keys added. A file that does not parse is named itself: the live one
    is the operator's to mend, the template the release's."""
    documents = []
    for text, file in ((live, live_name), (template, name)):
        try:
            documents.append(tomlkit.parse(text))
        except TOMLKitError as exc:
            raise ConfigError(f"{file} is not valid TOML {toml_problem(text, exc)}"
                              + ("" if file == live_name else f" (merging into {live_name})"),
                              hint=f"fix {file}" if file == live_name else
                              f"fix {file} on the release side") from None
    document, source = documents
    added: dict[str, Any] = {}

    def merge(into: Any, source_table: Any, prefix: str) -> None:
        for key, value in source_table.items():
            if key not in into:
                into[key] = value
                # A whole table added is reported key by key, as `check` names them.
                added.update(_leaves(f"{prefix}{key}", value))
            elif isinstance(value, dict) and isinstance(into[key], dict):
                merge(into[key], value, f"{prefix}{key}.")
    merge(document, source, "")
    return tomlkit.dumps(document), added


def _leaves(name: str, value: Any) -> dict[str, Any]:
    """A TOML value by its "section.key" names: a table by each value in it."""
    if not isinstance(value, dict):
        return {name: value}
    found: dict[str, Any] = {}
    for key, inner in value.items():
        found.update(_leaves(f"{name}.{key}", inner))
    return found
