"""The text form of `check`: every source the JSON form carries, readably, in sections.

A header counts the updates per category (the same count as the JSON's `total_updates` and
`updates_by_category`); then the bot's release, the packages, the dependencies, the config
templates, what a backup would hold, each source's error and the warnings. Config keys are
named, never valued: live config files hold secrets. Whatever was not checked says "not
checked" (never "0" or "no"), and whatever cannot be told says "unknown".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitrelease.core.text import size

if TYPE_CHECKING:
    from gitrelease.core.models import UpdateInfo
    from gitrelease.core.reports import CheckReport

__all__ = ["render_check"]

_CATEGORIES = ("bot", "packages", "dependencies", "config")
_CHANGELOG_LINES = 8


def render_check(report: CheckReport, *, details: bool = False) -> str:
    data = report.to_dict()
    lines = _header(report, data)
    lines += _bot(report, details)
    lines += _packages(report.packages)
    lines += _dependencies(report.dependencies)
    lines += _config(report.config)
    lines += _section("What a backup would hold", [
        f"  {kind}: {', '.join(names) if names else 'none found'}"
        for kind, names in report.backup_holds.items()])
    lines += _section("Errors", [f"  {source}: {error.message}"
                                 for source, error in report.errors.items()])
    # A hint shown in place of "up to date" is not said twice.
    shown = report.tag_hint if report.bot is None else None
    warnings = [f"warning: {w}" for w in report.warnings if w != shown]
    lines += ["", *warnings] if warnings else []
    if details and report.ignored_tags:
        lines.append("ignored tags (not PEP 440 versions): " + ", ".join(report.ignored_tags))
    return "\n".join(lines)


def _section(title: str, body: list[str]) -> list[str]:
    return ["", title, *body] if body else []


def _flag(value: bool | None, none: str) -> str:
    return none if value is None else ("yes" if value else "no")


def _checked(report: CheckReport) -> list[str]:
    kind = report.check_type.value
    return list(_CATEGORIES) if kind == "all" else [kind] if kind in _CATEGORIES else []


def _header(report: CheckReport, data: dict[str, Any]) -> list[str]:
    current = data["current_version"] or "?"
    if not report.version_known:
        current = f"unknown ({current})"
    counts = data["updates_by_category"]
    per = ", ".join(f"{name} {'?' if name in report.errors else counts[name]}"
                    for name in _checked(report))
    security = data["security_updates"]
    unchecked = ", ".join(report.security_unchecked)
    if security is None:
        security_text = "not checked" + (f" ({unchecked})" if unchecked else "")
    else:
        security_text = str(security) + (f" ({unchecked} not checked)" if unchecked else "")
    unknown = data["breaking_unknown"]
    return [
        "Update check",
        f"  current version: {current}",
        f"  available updates: {data['total_updates']}" + (f" ({per})" if per else ""),
        f"  security: {security_text}   breaking: {data['breaking_updates']}"
        + (f" (unknown for {unknown})" if unknown else ""),
    ]


def _bot(report: CheckReport, details: bool) -> list[str]:
    bot = report.bot
    if bot is None:
        if "bot" in report.errors or report.check_type.value not in ("all", "bot"):
            return []
        if report.tag_hint:
            # Never "up to date": the tags the patterns miss may be newer releases.
            return ["", "Bot: whether a newer release exists cannot be told",
                    f"  {report.tag_hint}"]
        return ["", "Bot: up to date"]
    return _release(bot, details)


def _release(bot: UpdateInfo, details: bool) -> list[str]:
    lines = [
        "", f"Bot release {bot.tag} ({bot.version}, current {bot.current_version})",
        f"  released: {bot.release_date:%Y-%m-%d %H:%M} UTC   commit: {bot.commit}",
        f"  changes: {bot.commit_count} commits, {bot.files_changed} files, {size(bot.size)}",
        f"  security: {_flag(bot.security_update, 'not checked')}   breaking: "
        f"{_flag(bot.breaking_changes, 'unknown')}   signature: {bot.signature}",
    ]
    if bot.dependencies:
        lines.append(f"  requires: {', '.join(bot.dependencies)}")
    changelog = bot.changelog or ""
    if not details and changelog.count("\n") > _CHANGELOG_LINES:
        changelog = "\n".join(changelog.split("\n")[:_CHANGELOG_LINES]) + \
            "\n... (--details for all)"
    # Split at newlines only: a carriage return or a line separator in a tag message is
    # shown as an escape (`gitrelease.cli.output`), never taken for a line break.
    lines += ["  changelog:"] + [f"    {line}" for line in changelog.split("\n")]
    if details and len(bot.releases) > 1:
        lines += ["  newer releases:"] + [
            f"    {r['tag']}  {r['release_date'][:10]}  signature: {r['signature']}"
            for r in bot.releases]
    return lines


def _packages(found: list[dict[str, Any]]) -> list[str]:
    return _section("Packages", [_package(p) for p in found])


def _package(p: dict[str, Any]) -> str:
    """`name: installed, latest`, what the target wants (and what the deployed commit
    wanted, if different), then the marks."""
    have = p.get("current_version") or "none"
    latest = p.get("latest_version") or "unknown"
    line = f"  {p['package']}: installed {have}, latest {latest}"
    wanted, before = p.get("required_target"), p.get("required_current")
    if wanted is None:
        line += ", no longer required by the target"
    else:
        line += f", target wants {wanted or 'any version'}"
        if before is not None and before != wanted:
            line += f" (was {before or 'any version'})"
        elif before is None:
            line += " (newly required)"
    marks = []
    if p.get("satisfied") is False:
        marks.append("NOT SATISFIED")
    if p.get("update_available"):
        marks.append("update available" + (" (major)" if p.get("breaking_changes") else ""))
    security = p.get("security")
    marks.append("security: not checked" if security is None else
                 f"VULNERABLE: {', '.join(security)}" if security else
                 "no known vulnerabilities")
    return f"{line}   {'; '.join(marks)}"


def _dependencies(found: list[dict[str, Any]]) -> list[str]:
    body: list[str] = []
    for dep in found:
        kind = dep.get("kind")
        if kind == "requirements":
            body.append(f"  requirements in {dep['target']}:")
            body += [f"    added: {r}" for r in dep.get("added", [])]
            body += [f"    removed: {r}" for r in dep.get("removed", [])]
            body += [f"    changed: {c['from']} -> {c['to']}" for c in dep.get("changed", [])]
        elif kind == "python":
            body.append(f"  python: {dep['target']} requires {dep['requires_python']}; this "
                        f"deployment runs {dep['python']}"
                        + ("" if dep.get("satisfied") else ": NOT SATISFIED"))
        elif kind == "conflicts":
            body.append("  pip check finds the installed packages in conflict:")
            body += [f"    {problem}" for problem in dep.get("problems", [])]
        elif kind == "npm":
            listed = dep.get("packages") or {}
            body.append(f"  npm (package.json in {dep['target']}; not installed by "
                        f"gitrelease): " + (", ".join(f"{name} {spec}" for name, spec in
                                                      listed.items()) or "no packages"))
        else:  # a kind this text does not know yet still shows
            body.append(f"  {kind}: {dep}")
    return _section("Dependencies", body)


def _config(config: dict[str, Any] | None) -> list[str]:
    if not config:
        return []
    body: list[str] = []
    version = config.get("version", "?")
    for f in config.get("files", []):
        rows = [(f"added in {version}", f.get("added_in_target")),
                (f"removed in {version}", f.get("removed_in_target")),
                (f"missing in {f['live']}", f.get("missing_in_live")),
                ("needs your value", f.get("needs_value"))]
        rows = [(label, keys) for label, keys in rows if keys]
        if not rows:
            continue
        body.append(f"  {f['template']} -> {f['live']}"
                    + ("" if f.get("live_exists") else f" ({f['live']} does not exist yet)")
                    + ":")
        body += [f"    {label}: {', '.join(keys)}" for label, keys in rows]
    if any(f.get("needs_value") for f in config.get("files", [])):
        body += ["  keys that need your value: set them in the live file (an install adds",
                 "  missing keys as the template has them and never invents a value)"]
    if config.get("breaking"):
        body.append("  BREAKING: keys are removed in the target")
    if config.get("update_available") and config.get("requires_restart"):
        body.append("  the bot reads changed config only when it is restarted")
    return _section(f"Config ({version})", body)
