"""The /update_check card: the whole report, as the CLI's text form carries it, in Markdown.

The header counts what an install would change ("### Available Updates: N", the report's
`total_updates`), and the sections below account for exactly those N: the release, the
packages to change, the requirement changes and a Python the release needs, the config keys
to add. What is not counted (pip's conflicts, npm's list, keys only the operator can set)
is shown as facts. Whatever was not checked says "not checked", never "0"; config keys are
named, never valued; whether a newer release exists says "cannot be told" when the running
version is at no release, never "up to date".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from gitrelease.core.text import size
from gitrelease_discord.card_text import card, flag, line, when
from gitrelease_discord.embeds import cut
from gitrelease_discord.i18n import text

if TYPE_CHECKING:
    from gitrelease.core.reports import CheckReport

__all__ = ["check_card", "holds_lines"]

_CATEGORIES = ("bot", "packages", "dependencies", "config")
_PACKAGES_SHOWN = 15
_WARNINGS_SHOWN = 10
_MORE = re.compile(r"^and (\d+) more$")  # how the engine cuts a long list of paths


def check_card(report: CheckReport, locale: str, *, details: bool = False) -> discord.Embed:
    """The report of /update_check; `details` adds the whole changelog, every newer
    release, the packages that are fine and the tags no pattern reads."""
    data = report.to_dict()
    lines = _header(report, data, locale)
    lines += _bot(report, details, locale)
    lines += _packages(report, details, locale)
    lines += _dependencies(report.dependencies, data, locale)
    lines += _config(report.config, locale)
    holds = holds_lines(report.backup_holds, locale)
    lines += [line(locale, "holds_heading"), *holds] if holds else []
    lines += [line(locale, "source_error", source=_category(source, locale),
                   error=error.message) for source, error in report.errors.items()]
    # A hint already shown in place of "up to date" is not said twice.
    shown = report.tag_hint if report.bot is None else None
    warnings = [w for w in report.warnings if w != shown]
    lines += [line(locale, "warning_line", text=w) for w in warnings[:_WARNINGS_SHOWN]]
    if len(warnings) > _WARNINGS_SHOWN:
        lines.append(line(locale, "and_more", count=len(warnings) - _WARNINGS_SHOWN))
    if details and report.ignored_tags:
        lines.append(line(locale, "check_ignored_tags", tags=", ".join(report.ignored_tags)))
    colour = "warn" if report.errors or data["total_updates"] else "ok"
    return card(text("check_title", locale), lines, colour, locale)


def holds_lines(holds: dict[str, list[str]], locale: str) -> list[str]:
    """What a backup would hold, one line per kind ("• Databases: data/app.db")."""
    return [line(locale, "holds_line", kind=line(locale, f"holds_{kind}") if kind in
                 ("databases", "config", "data") else kind,
                 paths=", ".join(_path(p, locale) for p in paths) if paths
                 else line(locale, "holds_none")) for kind, paths in holds.items()]


def _path(path: str, locale: str) -> str:
    more = _MORE.match(path)
    return line(locale, "and_more", count=int(more.group(1))) if more else path


def _category(name: str, locale: str) -> str:
    return line(locale, f"category_{name}") if name in _CATEGORIES else name


def _checked(report: CheckReport) -> list[str]:
    kind = report.check_type.value
    return list(_CATEGORIES) if kind == "all" else [kind] if kind in _CATEGORIES else []


def _header(report: CheckReport, data: dict[str, Any], locale: str) -> list[str]:
    counts = data["updates_by_category"]
    per = [line(locale, "check_count", name=_category(name, locale),
                count=line(locale, "count_failed") if name in report.errors
                else counts[name]) for name in _checked(report)]
    security = data["security_updates"]
    unchecked = ", ".join(_category(s, locale) for s in report.security_unchecked)
    if security is None:
        shown = line(locale, "security_not_checked", sources=unchecked) if unchecked \
            else line(locale, "not_checked")
    else:
        shown = line(locale, "security_partly", count=security, sources=unchecked) \
            if unchecked else security
    breaking = line(locale, "breaking_unknown_note", count=data["breaking_unknown"]) \
        if data["breaking_unknown"] else ""
    return [
        line(locale, "check_available", count=data["total_updates"]),
        line(locale, "check_counts", counts=" · ".join(per)) if per else None,
        line(locale, "check_current", version=data["current_version"] or "-")
        if report.version_known else line(locale, "check_current_unknown",
                                          version=data["current_version"] or "-"),
        line(locale, "check_security", count=shown),
        line(locale, "check_breaking", count=f"{data['breaking_updates']}{breaking}"),
        line(locale, "check_last", when=when(report.last_check, locale)),
    ]


def _bot(report: CheckReport, details: bool, locale: str) -> list[str]:
    bot = report.bot
    if bot is None:
        if "bot" in report.errors or report.check_type.value not in ("all", "bot"):
            return []
        if report.tag_hint or not report.version_known:
            # Never "up to date": the tags the patterns miss may be newer releases.
            return [line(locale, "bot_heading"), line(
                locale, "bot_cannot_tell", hint=report.tag_hint or line(
                    locale, "bot_not_a_release", version=report.current_version))]
        return [line(locale, "bot_heading"),
                line(locale, "bot_up_to_date", version=report.current_version)]
    changelog = (bot.changelog or "-").strip()
    if not details:
        changelog = cut(changelog.splitlines()[0] if changelog else "-", 200)
    lines = [
        line(locale, "bot_heading"),
        line(locale, "bot_version", tag=bot.tag or bot.version, current=bot.current_version),
        line(locale, "bot_size", size=size(bot.size), commits=bot.commit_count,
             files=bot.files_changed),
        line(locale, "bot_changelog", changelog=cut(changelog, 1500)),
        line(locale, "bot_security", value=flag(bot.security_update, locale)),
        line(locale, "bot_breaking", value=flag(bot.breaking_changes, locale,
                                                unknown="unknown")),
        line(locale, "bot_signature", value=bot.signature or "-"),
        line(locale, "bot_released", when=when(bot.release_date, locale)),
    ]
    if bot.dependencies:
        lines.append(line(locale, "bot_requires", requires=", ".join(bot.dependencies)))
    if details and len(bot.releases) > 1:
        lines.append(line(locale, "bot_newer", tags=", ".join(
            str(r["tag"]) for r in bot.releases[:20])))
    return lines


def _counted(package: dict[str, Any]) -> bool:
    """As the report counts a package: newer, no longer allowed, or known vulnerable."""
    return bool(package.get("update_available") or package.get("satisfied") is False
                or package.get("security"))


def _packages(report: CheckReport, details: bool, locale: str) -> list[str]:
    counted = [p for p in report.packages if _counted(p)]
    lines = [line(locale, "packages_heading", count=len(counted))] if counted else []
    for number, package in enumerate(counted[:_PACKAGES_SHOWN], start=1):
        lines.append(_package(number, package, locale))
    if len(counted) > _PACKAGES_SHOWN:
        lines.append(line(locale, "and_more", count=len(counted) - _PACKAGES_SHOWN))
    fine = [p["package"] for p in report.packages if not _counted(p)]
    if details and fine:
        lines.append(line(locale, "packages_fine", names=", ".join(fine)))
    return lines


def _package(number: int, p: dict[str, Any], locale: str) -> str:
    """`1. **name** 1.0 → 1.1 (Security Update: GHSA-…)`, then what the target wants."""
    have = p.get("current_version") or line(locale, "not_installed")
    latest = p.get("latest_version")
    marks = ""
    if p.get("security"):
        marks += line(locale, "security_marker", ids=", ".join(p["security"]))
    if p.get("update_available") and p.get("breaking_changes"):
        marks += line(locale, "major_marker")
    wanted, before = p.get("required_target"), p.get("required_current")
    if wanted is None:
        marks += line(locale, "wants_dropped")
    else:
        marks += line(locale, "wants", spec=wanted or line(locale, "any_version"))
        if before is None:
            marks += line(locale, "wants_new")
        elif before != wanted:
            marks += line(locale, "wants_was", spec=before or line(locale, "any_version"))
    if p.get("satisfied") is False:
        marks += line(locale, "not_satisfied_marker")
    key = "package_line" if p.get("update_available") and latest else "package_line_same"
    return line(locale, key, n=number, name=p["package"], current=have, latest=latest or "-",
                marker=marks)


def _dependencies(found: list[dict[str, Any]], data: dict[str, Any], locale: str) -> list[str]:
    body: list[str] = []
    for dep in found:
        kind = dep.get("kind")
        if kind == "requirements":
            body.append(line(locale, "dep_requirements", target=dep.get("target", "-")))
            body += [line(locale, "dep_added", requirement=r) for r in dep.get("added", [])]
            body += [line(locale, "dep_removed", requirement=r) for r in dep.get("removed", [])]
            body += [line(locale, "dep_changed", before=c["from"], after=c["to"])
                     for c in dep.get("changed", [])]
        elif kind == "python":
            body.append(line(locale, "dep_python" if dep.get("satisfied")
                             else "dep_python_unsatisfied", target=dep.get("target", "-"),
                             spec=dep.get("requires_python", "-"),
                             python=dep.get("python", "-")))
        elif kind == "conflicts":
            body.append(line(locale, "dep_conflicts", problems="; ".join(
                dep.get("problems", [])[:5])))
        elif kind == "npm":
            listed = dep.get("packages") or {}
            body.append(line(locale, "dep_npm", target=dep.get("target", "-"), packages=", ".join(
                f"{name} {spec}" for name, spec in listed.items()) or "-"))
        else:  # a kind this card does not know yet is named, not dropped
            body.append(line(locale, "dep_other", kind=kind))
    if not body:
        return []
    return [line(locale, "deps_heading", count=data["updates_by_category"]["dependencies"]),
            *body]


def _config(config: dict[str, Any] | None, locale: str) -> list[str]:
    if not config:
        return []
    version = config.get("version", "-")
    counted = config.get("update_available", True)
    lines = [line(locale, "config_heading" if counted else "config_heading_facts"),
             line(locale, "config_version", version=version)]
    for f in config.get("files", []):
        rows = [("config_added", f.get("added_in_target")),
                ("config_removed", f.get("removed_in_target")),
                ("config_missing", f.get("missing_in_live")),
                ("config_needs_value", f.get("needs_value"))]
        rows = [(key, keys) for key, keys in rows if keys]
        if not rows:
            continue
        lines.append(line(locale, "config_file" if f.get("live_exists") else "config_file_new",
                          template=f["template"], live=f["live"]))
        lines += [line(locale, key, version=version, live=f["live"], keys=", ".join(keys))
                  for key, keys in rows]
    if any(f.get("needs_value") for f in config.get("files", [])):
        lines.append(line(locale, "config_needs_value_hint"))
    if config.get("breaking"):
        lines.append(line(locale, "config_breaking", version=version))
    if counted:
        lines.append(line(locale, "config_restart",
                          value=flag(bool(config.get("requires_restart")), locale)))
    return lines
