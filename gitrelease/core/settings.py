"""One typed schema of every setting, loaded in layers.

Layers, lowest first: the defaults below < ``[tool.gitrelease]`` in the deployment's
``pyproject.toml`` (versioned, so each release carries its own) < ``data/settings.toml``
(runtime overrides). Keys are flat and unique across categories. A key or value on disk that
the schema does not allow is an error naming the file, the key and the reason.

The `Settings` dataclass *is* the schema: each field's default, type and metadata (category,
description, allowed values, bounds) are the one place a setting is defined. One module on
purpose, over the ~400-line aim: the dataclass is the schema, and its checks sit beside it.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gitrelease.core.errors import InvalidSetting

__all__ = [
    "CATEGORIES",
    "INERT",
    "LoadedSettings",
    "SettingSpec",
    "Settings",
    "command_argv",
    "is_secret",
    "load_settings",
    "schema",
]

CATEGORIES = ("update", "backup", "notification", "schedule")
#: Settings of the specification this version does not act on yet; a value given for one is
#: reported, never silently ignored.
#: (The notification settings are acted on by the Discord extension.)
INERT = (
    "auto_updates_enabled", "update_check_interval",
    "test_updates", "verify_downloads", "log_level", "max_log_files", "log_rotation_size",
)
#: Settings whose value is never shown: an index URL may hold a password.
SECRETS = frozenset({"index_url"})


def is_secret(name: str) -> bool:
    """Whether a setting's value is never shown, only whether it is set: commands may carry
    tokens, an index URL a password."""
    return name.endswith("_command") or name in SECRETS


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _meta(
    category: str,
    description: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    pattern: re.Pattern[str] | None = None,
    pattern_text: str = "",
    check: Callable[[Any], bool] | None = None,
) -> dict[str, Any]:
    return {
        "category": category,
        "description": description,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "pattern": pattern,
        "pattern_text": pattern_text,
        "check": check,
    }


def _is_command(value: str | list[str]) -> bool:
    try:
        command_argv(value)
    except ValueError:
        return False
    return True


def command_argv(value: str | list[str]) -> list[str]:
    """The argument list of a command setting: a TOML array as it is, a string split the way
    a shell would split it (quotes respected), never run through a shell. Empty: []."""
    import shlex

    argv = shlex.split(value) if isinstance(value, str) else list(value)
    if argv and (not all(isinstance(a, str) and a for a in argv) or argv[0].startswith("-")):
        raise ValueError(f"not a command: {value!r}")
    return argv


_TAG_GLOB = re.compile(r"^[A-Za-z0-9._/-]*\*[A-Za-z0-9._/-]*$")


def _is_tag_patterns(value: str | list[str]) -> bool:
    patterns = [value] if isinstance(value, str) else value
    return 0 < len(patterns) <= 10 and all(_TAG_GLOB.match(p) for p in patterns)


def _is_index_url(value: str) -> bool:
    return value == "" or (value.startswith(("postgresql://", "postgres://"))
                           and len(value) <= 2000 and value.isprintable())


_INSTANCE = re.compile(r"^[A-Za-z0-9._:/@-]{1,200}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9._-]+$")
_ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/\S*)?$")


def is_bucket(name: str) -> bool:
    """An S3 bucket name: 3-63 of a-z, 0-9, '.' and '-', no '..'."""
    return bool(_BUCKET.match(name)) and ".." not in name


def is_prefix(prefix: str) -> bool:
    """A key prefix of parts of letters, digits, '.', '_' and '-' between slashes (no '.' or
    '..' part); empty is the bucket's root."""
    return prefix == "" or (len(prefix) <= 500 and all(
        _PREFIX_PART.match(part) and part not in (".", "..") for part in prefix.split("/")))


def _is_offsite_url(value: str) -> bool:
    if value == "":
        return True
    bucket, _, prefix = value.removeprefix("s3://").partition("/")
    return value.startswith("s3://") and is_bucket(bucket) and is_prefix(prefix.strip("/"))


def _is_key_file(value: str) -> bool:
    return value == "" or (value.startswith("/") and "\x00" not in value and len(value) < 4096)


def is_endpoint(value: str) -> bool:
    return value == "" or bool(_ENDPOINT.match(value))


def _is_instance_id(value: str) -> bool:
    return value == "" or bool(_INSTANCE.match(value))


def _is_timezone(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Settings:
    # -- update: general ------------------------------------------------------------------
    auto_updates_enabled: bool = field(default=False, metadata=_meta(
        "update", "install releases automatically on the schedules"))
    update_check_interval: int = field(default=3600, metadata=_meta(
        "update", "seconds between background checks for new releases", minimum=60,
        maximum=7 * 24 * 3600))
    max_concurrent_updates: int = field(default=1, metadata=_meta(
        "update", "updates that may run at once (one deployment takes one at a time)",
        minimum=1, maximum=1))
    require_confirmation: bool = field(default=True, metadata=_meta(
        "update", "ask for confirmation before installing a release with breaking changes"))
    notify_on_completion: bool = field(default=True, metadata=_meta(
        "update", "announce finished updates"))
    auto_restart: bool = field(default=True, metadata=_meta(
        "update", "restart the bot after an update that needs it"))
    index_url: str = field(default="", metadata=_meta(
        "update", "PostgreSQL URL of an index several deployments share "
        "(postgresql://user@host/db; its password from PGPASSWORD or ~/.pgpass); empty: the "
        "SQLite index in the data folder. GITRELEASE_INDEX_URL overrides it",
        check=_is_index_url, pattern_text="empty, or a postgresql:// URL"))
    index_busy_timeout: int = field(default=10, metadata=_meta(
        "update", "seconds to wait for the index while another process holds it, before "
        "saying it is busy", minimum=1, maximum=3600))
    instance_id: str = field(default="", metadata=_meta(
        "update", "this deployment's name in a shared index (empty: host:folder of the "
        "checkout); two deployments never share one", check=_is_instance_id,
        pattern_text="empty, or 1-200 letters, digits or ._:/@-"))
    instance_group: str = field(default="default", metadata=_meta(
        "update", "this deployment's group in a shared index (canary, prod, staging, ...)",
        pattern=re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$"),
        pattern_text="1-50 letters, digits, '.', '_' or '-'"))
    shard_ids: list[int] = field(default_factory=list, metadata=_meta(
        "update", "the Discord shard ids this deployment runs, as a shared index reports them "
        "(empty: what the bot says it runs, when it reports itself)"))
    fleet_heartbeat_seconds: int = field(default=30, metadata=_meta(
        "update", "seconds between this deployment's reports to a shared index; one that has "
        "not reported for three times this is shown as stale", minimum=5, maximum=3600))
    remote: str = field(default="origin", metadata=_meta(
        "update", "git remote that release tags are fetched from",
        pattern=re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$"), pattern_text="a remote name"))
    tag_pattern: str | list[str] = field(default_factory=lambda: ["v*", "*"], metadata=_meta(
        "update", "glob(s) of release tags, one '*' each, standing for a PEP 440 version; a "
        "list covers a project that switched scheme (the default takes v1.2.0 and 1.2.0)",
        check=_is_tag_patterns,
        pattern_text="a glob with exactly one '*' (such as v* or release-*), or a list of 1 "
        "to 10 of them (such as [\"v*\", \"*\"])"))
    channel: str = field(default="stable", metadata=_meta(
        "update", "which releases are offered: stable, or pre to include pre-releases",
        choices=("stable", "pre")))
    fetch_timeout: int = field(default=60, metadata=_meta(
        "update", "seconds a fetch from the remote may take", minimum=1, maximum=3600))
    git_timeout: int = field(default=120, metadata=_meta(
        "update", "seconds any local git command may take", minimum=1, maximum=3600))
    python_executable: str = field(default="", metadata=_meta(
        "update", "the deployment's interpreter (empty: the one running gitrelease)"))
    health_check_command: str | list[str] = field(default="", metadata=_meta(
        "update", "command that must succeed after an update, or it is rolled back "
        "(a list of arguments, or a string split like a shell would; empty: none)",
        check=_is_command, pattern_text="a string or a list of strings (no shell)"))
    health_check_timeout: int = field(default=120, metadata=_meta(
        "update", "seconds the health check may take", minimum=1, maximum=3600))
    post_update_command: str | list[str] = field(default="", metadata=_meta(
        "update", "command run after the checkout, e.g. migrations (same form; empty: none)",
        check=_is_command, pattern_text="a string or a list of strings (no shell)"))
    pip_timeout: int = field(default=900, metadata=_meta(
        "update", "seconds a pip install may take", minimum=10, maximum=86_400))
    post_update_timeout: int = field(default=600, metadata=_meta(
        "update", "seconds the post-update command may take", minimum=1, maximum=86_400))
    restart_method: str = field(default="none", metadata=_meta(
        "update", "how the bot is restarted after an update: command (run restart_command), "
        "signal (SIGTERM to the pid in data/bot.pid), exit (the bot exits with status 75 for "
        "its supervisor), none", choices=("none", "command", "signal", "exit")))
    restart_command: str | list[str] = field(default="", metadata=_meta(
        "update", "command run for restart_method = command, e.g. systemctl restart --no-block "
        "mybot (same form as the health check)", check=_is_command,
        pattern_text="a string or a list of strings (no shell)"))
    restart_timeout: int = field(default=60, metadata=_meta(
        "update", "seconds the restart command may take", minimum=1, maximum=3600))
    max_boot_failures: int = field(default=3, metadata=_meta(
        "update", "starts of a freshly updated version that never confirmed before boot-check "
        "rolls it back", minimum=1, maximum=100))
    start_confirmation: str = field(default="auto", metadata=_meta(
        "update", "whether boot-check counts unconfirmed starts toward max_boot_failures: "
        "required (the bot always calls confirm_start or loads the cog), off (a passing health "
        "check confirms), auto (required once this deployment has ever confirmed a start)",
        choices=("auto", "required", "off")))
    local_changes: str = field(default="refuse", metadata=_meta(
        "update", "what an install does with edits to tracked files: refuse, or carry them "
        "over the checkout (stash, checkout, re-apply; a conflict undoes the install)",
        choices=("refuse", "carry")))
    require_signed_tags: bool = field(default=False, metadata=_meta(
        "update", "install only release tags whose signature git verify-tag accepts"))
    timezone: str = field(default="UTC", metadata=_meta(
        "update", "IANA time zone that schedules are read in", check=_is_timezone,
        pattern_text="an IANA time zone such as UTC or Europe/Berlin"))
    config_templates: dict[str, str] = field(
        default_factory=lambda: {".env.example": ".env", "config.example.toml": "config.toml"},
        metadata=_meta("update", "tracked template -> live untracked config file"))
    # -- update: safety -------------------------------------------------------------------
    require_backup_before_update: bool = field(default=True, metadata=_meta(
        "update", "take a backup before every update"))
    min_disk_space_mb: int = field(default=1024, metadata=_meta(
        "update", "free space (MiB) an update needs before it starts", minimum=0,
        maximum=10_000_000))
    max_update_size_mb: int = field(default=100, metadata=_meta(
        "update", "largest release (MiB of changed files) installed without --force",
        minimum=1, maximum=1_000_000))
    verify_downloads: bool = field(default=True, metadata=_meta(
        "update", "verify that HEAD is the release's commit after checkout"))
    test_updates: bool = field(default=False, metadata=_meta(
        "update", "run the health check before declaring an update done"))
    rollback_on_failure: bool = field(default=True, metadata=_meta(
        "update", "undo an update that fails part-way"))
    # -- update: logging ------------------------------------------------------------------
    log_level: str = field(default="INFO", metadata=_meta(
        "update", "level of the update logs", choices=("DEBUG", "INFO", "WARNING", "ERROR")))
    update_logs_path: str = field(default="data/update_logs/", metadata=_meta(
        "update", "directory of per-session update logs"))
    max_log_files: int = field(default=10, metadata=_meta(
        "update", "update logs kept", minimum=1, maximum=10_000))
    log_rotation_size: int = field(default=10_485_760, metadata=_meta(
        "update", "bytes after which a log file is rotated", minimum=1024))
    # -- backup ---------------------------------------------------------------------------
    backup_enabled: bool = field(default=True, metadata=_meta(
        "backup", "allow backups to be taken"))
    max_backups: int = field(default=50, metadata=_meta(
        "backup", "backups kept before the oldest are pruned", minimum=1, maximum=10_000))
    auto_cleanup: bool = field(default=True, metadata=_meta(
        "backup", "prune old backups automatically"))
    compression_enabled: bool = field(default=True, metadata=_meta(
        "backup", "compress backup archives"))
    # zstd by default: at its level 3 it packs about as tight as gzip's 6 in a fraction of
    # the time (the benchmark's 362 MiB state: ~2.4 s against ~8.7 s). gzip stays readable
    # and selectable, for archives that tools without zstd must open.
    compression: str = field(default="zstd", metadata=_meta(
        "backup", "archive compression", choices=("gzip", "zstd")))
    compression_level: int = field(default=6, metadata=_meta(
        "backup", "gzip compression level (1-9)", minimum=1, maximum=9))
    # zstd's scale is not gzip's: its 3 (the zstd tool's default) packs about as tight as
    # gzip's 6 at several times the speed, and 6 costs twice the time of 3 for ~2% less.
    zstd_level: int = field(default=3, metadata=_meta(
        "backup", "zstd compression level (1-19)", minimum=1, maximum=19))
    # Every backup but the first of a chain stores only what changed since the one before it
    # (files by sha256, databases by page); a chain this long ends and the next is full. Two
    # weeks of daily backups in one chain; 1 makes every backup full.
    full_every: int = field(default=14, metadata=_meta(
        "backup", "backups per chain: each one after a full backup stores only what changed "
        "since the one before it, and every full_every-th is full again (1: always full)",
        minimum=1, maximum=100))
    backup_retention_days: int = field(default=90, metadata=_meta(
        "backup", "days a backup is kept", minimum=1, maximum=36_500))
    backup_path: str = field(default="data/backups/", metadata=_meta(
        "backup", "directory of backup archives"))
    verify_backups: bool = field(default=True, metadata=_meta(
        "backup", "verify each archive after writing it"))
    offsite: str = field(default="off", metadata=_meta(
        "backup", "offsite copies of backups: off; after_backup (each completed backup is "
        "uploaded, a failed upload is queued and retried); manual (gitrelease backup push ID)",
        choices=("off", "after_backup", "manual")))
    offsite_url: str = field(default="", metadata=_meta(
        "backup", "where offsite copies go: s3://bucket/prefix on S3-compatible storage (its "
        "credentials from the AWS environment, a profile or an instance role, never here)",
        check=_is_offsite_url, pattern_text="empty, or s3://bucket/prefix"))
    offsite_endpoint: str = field(default="", metadata=_meta(
        "backup", "the storage's endpoint URL for S3-compatible services other than AWS "
        "(R2, B2, MinIO); empty: AWS S3", check=is_endpoint,
        pattern_text="empty, or an http(s) URL"))
    offsite_key_file: str = field(default="", metadata=_meta(
        "backup", "a file outside the deployment holding the key offsite copies are encrypted "
        "with (gitrelease backup key-new FILE makes one); it is never uploaded. Without it, "
        "backups that hold config are not uploaded", check=_is_key_file,
        pattern_text="empty, or an absolute path"))
    offsite_max_backups: int = field(default=100, metadata=_meta(
        "backup", "offsite copies kept before the oldest are pruned", minimum=1,
        maximum=100_000))
    offsite_retention_days: int = field(default=365, metadata=_meta(
        "backup", "days an offsite copy is kept", minimum=1, maximum=36_500))
    database_paths: list[str] = field(default_factory=list, metadata=_meta(
        "backup", "extra SQLite databases to back up (relative to the root)"))
    config_paths: list[str] = field(default_factory=list, metadata=_meta(
        "backup", "extra untracked config files to back up (relative to the root)"))
    # -- schedule -------------------------------------------------------------------------
    scheduling_enabled: bool = field(default=True, metadata=_meta(
        "schedule", "run update schedules"))
    default_time: str = field(default="03:00", metadata=_meta(
        "schedule", "time of day (HH:MM) for schedules that name none", pattern=_HHMM,
        pattern_text="a time HH:MM"))
    max_schedules: int = field(default=5, metadata=_meta(
        "schedule", "schedules that may exist at once", minimum=1, maximum=100))
    allowed_update_types: list[str] = field(
        default_factory=lambda: ["packages", "bot", "config"], metadata=_meta(
        "schedule", "update types a schedule may run"))
    require_backup_before_schedule: bool = field(default=True, metadata=_meta(
        "schedule", "take a backup before every scheduled update"))
    schedule_grace_minutes: int = field(default=60, metadata=_meta(
        "schedule", "a run missed by more than this (the bot was down) is skipped, not run late",
        minimum=1, maximum=7 * 24 * 60))
    # -- notification ---------------------------------------------------------------------
    update_start_notifications: bool = field(default=True, metadata=_meta(
        "notification", "announce updates when they start"))
    update_progress_notifications: bool = field(default=False, metadata=_meta(
        "notification", "announce update progress"))
    update_completion_notifications: bool = field(default=True, metadata=_meta(
        "notification", "announce updates when they finish"))
    error_notifications: bool = field(default=True, metadata=_meta(
        "notification", "announce failures"))
    backup_notifications: bool = field(default=True, metadata=_meta(
        "notification", "announce backups"))
    notify_channels: list[int] = field(default_factory=list, metadata=_meta(
        "notification", "Discord channel ids that receive notifications"))

    def get(self, name: str) -> Any:
        return getattr(self, name)


@dataclass(frozen=True)
class SettingSpec:
    name: str
    category: str
    description: str
    type: Any
    default: Any
    choices: tuple[str, ...] | None
    minimum: int | None
    maximum: int | None
    pattern: re.Pattern[str] | None
    pattern_text: str
    check: Callable[[Any], bool] | None

    def allowed(self) -> str:
        if self.choices:
            return ", ".join(self.choices)
        if self.pattern_text:
            return self.pattern_text
        kind = _type_name(self.type)
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else str(self.minimum)
            high = "" if self.maximum is None else str(self.maximum)
            return f"{kind} in {low}..{high}"
        return kind

    def validate(self, value: Any, file: str) -> Any:
        """The value if the schema allows it, else InvalidSetting naming file, key and why.

        A command's value is never repeated in the message: commands may carry tokens.
        """
        try:
            return self._validate(value, file)
        except InvalidSetting:
            if is_secret(self.name):
                raise InvalidSetting(file, self.name, f"is not valid; allowed: "
                                     f"{self.allowed()}") from None
            raise

    def _validate(self, value: Any, file: str) -> Any:
        if not _is_instance(value, self.type):
            raise InvalidSetting(
                file, self.name,
                f"must be {_type_name(self.type)}, not {type(value).__name__} {value!r}")
        if self.choices and value not in self.choices:
            raise InvalidSetting(file, self.name, f"is {value!r}; allowed: {self.allowed()}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidSetting(file, self.name, f"is {value}; allowed: {self.allowed()}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidSetting(file, self.name, f"is {value}; allowed: {self.allowed()}")
        if self.pattern is not None and not self.pattern.match(value):
            raise InvalidSetting(file, self.name, f"is {value!r}; allowed: {self.allowed()}")
        if self.check is not None and not self.check(value):
            raise InvalidSetting(file, self.name, f"is {value!r}; allowed: {self.allowed()}")
        return value


def schema() -> dict[str, SettingSpec]:
    """Every setting by name, in declaration order."""
    hints = typing.get_type_hints(Settings)
    specs: dict[str, SettingSpec] = {}
    for f in fields(Settings):
        default = f.default_factory() if callable(f.default_factory) else f.default
        m = f.metadata
        specs[f.name] = SettingSpec(
            f.name, m["category"], m["description"], hints[f.name], default, m["choices"],
            m["minimum"], m["maximum"], m["pattern"], m["pattern_text"], m["check"])
    return specs


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str]  # setting name -> "default" or the file it came from


def load_settings(root: Path, data_dir: Path) -> LoadedSettings:
    """Defaults < [tool.gitrelease] in pyproject.toml < data/settings.toml."""
    specs = schema()
    values: dict[str, Any] = {}
    sources = dict.fromkeys(specs, "default")
    pyproject = root / "pyproject.toml"
    tool = _read_toml(pyproject).get("tool", {})
    table = tool.get("gitrelease", {}) if isinstance(tool, dict) else {}
    _merge(table, specs, str(pyproject), values, sources)
    runtime = data_dir / "settings.toml"
    _merge(_read_toml(runtime), specs, str(runtime), values, sources)
    return LoadedSettings(Settings(**values), sources)


def _merge(
    table: Any, specs: dict[str, SettingSpec], file: str,
    values: dict[str, Any], sources: dict[str, str],
) -> None:
    if not isinstance(table, dict):
        raise InvalidSetting(file, "tool.gitrelease", "must be a table")
    for key, value in table.items():
        spec = specs.get(key)
        if spec is None:
            import difflib  # only for a mistyped key: not on every command's start-up path

            close = difflib.get_close_matches(key, specs, n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidSetting(file, key, f"is not a setting{suggestion}")
        values[key] = spec.validate(value, file)
        sources[key] = file


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's table; {} when it does not exist. One that does not parse or cannot be
    read is named, with where and what (`toml_errors`), never taken for empty."""
    from gitrelease.core.toml_errors import toml_problem, utf8_problem

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise InvalidSetting(str(path), None, "cannot be read: it is a directory, not a file",
                             hint=f"put the settings file in the place of {path}") from None
    except OSError as exc:
        raise InvalidSetting(str(path), None, f"cannot be read: {exc.strerror}",
                             hint=f"check the permissions of {path}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSetting(str(path), None,
                             f"is not valid TOML {utf8_problem(data, exc)}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSetting(str(path), None,
                             f"is not valid TOML {toml_problem(text, exc)}") from None


def _is_instance(value: Any, kind: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        return isinstance(value, list) and all(_is_instance(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(kind)
        return isinstance(value, dict) and all(
            _is_instance(k, key) and _is_instance(v, item) for k, v in value.items())
    if kind is int:  # bool is an int in Python, never in a settings file
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(kind, types.UnionType):
        return any(_is_instance(value, k) for k in typing.get_args(kind))
    return isinstance(value, kind)


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is list:
        return f"a list of {_type_name(typing.get_args(kind)[0])}"
    if origin is dict:
        return "a table of strings"
    if isinstance(kind, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    return {bool: "true or false", int: "an integer", str: "a string"}.get(kind, str(kind))
