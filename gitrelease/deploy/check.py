"""`check`: what is available for a deployment, per source.

The bot's releases (tags fetched, or listed by the remote when nothing is new), the packages,
the dependencies and the config templates; one failing source does not sink the others. The
last check's summary is kept in a small JSON file, so that `check` needs no index.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from gitrelease.core.beside import Beside
from gitrelease.core.errors import GitReleaseError
from gitrelease.core.models import UpdateInfo, UpdateType, parse_update_type, utcnow
from gitrelease.core.reports import CheckReport, SourceError
from gitrelease.deploy.context import Deployment
from gitrelease.git import releases
from gitrelease.git.releases import ReleaseSnapshot

__all__ = ["LAST_CHECK", "check", "last_check"]

LAST_CHECK = "last_check.json"


def check(
    d: Deployment, check_type: str = "all", *, include_security: bool = True
) -> CheckReport:
    """What is available, per source; one failing source does not sink the others.
    Blocking (git and disk work): the facade runs it in a thread, the CLI in its own."""
    from gitrelease.deploy.holds import backup_holds

    kind = parse_update_type(check_type, field="check_type")
    report = CheckReport(kind, utcnow(), "", security_checked=include_security)
    # What a backup would hold (two git listings and a walk for databases) is worked out
    # while the remote answers: it depends on nothing the check finds.
    holds = Beside(lambda: backup_holds(d))
    _check_bot(d, report, include_security, kind)
    others = [s for s in (UpdateType.PACKAGES, UpdateType.DEPENDENCIES, UpdateType.CONFIG)
              if kind in (UpdateType.ALL, s)]
    if others:
        _check_others(d, report, include_security, others)
    report.backup_holds = holds.result()
    _remember_check(d, report)
    d.claim_data_dir()  # the summary may have just made the data dir
    return report


def _remember_check(d: Deployment, report: CheckReport) -> None:
    """When the last check ran and what it found, for `status` (a small JSON file, so
    that `check` needs no database)."""
    import json

    from gitrelease.core.fsutil import atomic_write

    summary = {"at": report.last_check.isoformat(), "check_type": report.check_type.value,
               "total_updates": report.to_dict()["total_updates"]}
    with suppress(OSError):  # a read-only data dir must not make the check itself fail
        atomic_write(d.data_dir / LAST_CHECK, json.dumps(summary).encode())


def last_check(d: Deployment) -> dict[str, Any] | None:
    import json

    try:
        return json.loads((d.data_dir / LAST_CHECK).read_text())
    except (OSError, ValueError):
        return None


def _check_others(
    d: Deployment, report: CheckReport, include_security: bool, sources: list[UpdateType]
) -> None:
    from gitrelease.deploy import check_sources as checks

    snap = d.snapshot()
    if UpdateType.PACKAGES in sources:
        checks.check_packages(d, report, snap, include_security)
    if UpdateType.DEPENDENCIES in sources:
        checks.check_dependencies(d, report, snap)
    if UpdateType.CONFIG in sources:
        checks.check_config_source(d, report, snap)


def _check_bot(
    d: Deployment, report: CheckReport, include_security: bool, kind: UpdateType
) -> None:
    moved: tuple[str, ...] = ()
    wanted = kind in (UpdateType.ALL, UpdateType.BOT)
    with suppress(GitReleaseError):  # asked once here, before anything runs beside
        d.repo.remote_names()
    # The tags are listed (and the remote's URL read) while the remote is asked for its
    # tags, and the bot's update is worked out from that listing; both stand if nothing
    # needed fetching, else (or if the fetch failed) they are done again.
    early = Beside(d.snapshot)
    url = Beside(d.remote_url)
    ahead = Beside(lambda: _bot_update(d, early.result(), include_security, url)) \
        if wanted else None
    try:
        fresh = False
        try:
            fetched = d.fetch_unless_current(early)
            # Only the remote's own list vouches for the early listing: a fetch that
            # brings nothing may follow another process's that brought the new tags.
            fresh = fetched is None
            moved = fetched.moved_tags if fetched is not None else ()
        except GitReleaseError as exc:
            if wanted:
                report.errors["bot"] = SourceError.from_exception(exc)
            report.warnings.append(f"showing the releases already known locally "
                                   f"({exc.message})")
        early_stands = early.succeeds() and fresh
        snap = early.result() if early_stands else d.snapshot()
        report.current_version = snap.current.text
        report.ignored_tags = snap.ignored
        report.version_known = snap.current.base is not None
        # Never "up to date" when no tag is a release, or when tags the patterns miss read
        # as newer releases: the hint says which tags were seen and what would take them.
        report.tag_hint = snap.hint
        unknown = snap.unknown_version_warning() if snap.releases else None
        report.warnings += [w for w in (snap.hint, unknown) if w]
        if moved:
            from gitrelease.deploy.resolve import moved_warning

            report.warnings += [moved_warning(tag) for tag in moved]
        report.warnings += d.inert_settings() + snap.bad_warnings()
        if wanted:
            if ahead is not None and early_stands and ahead.succeeds():
                bot, local = ahead.result()
            else:
                bot, local = _bot_update(d, snap, include_security, url)
            report.bot = bot
            report.warnings += local
            if bot is not None and d.settings.require_signed_tags and \
                    bot.signature != "valid":
                report.warnings.append(
                    f"{bot.tag} would be refused: require_signed_tags is on and its "
                    f"signature is {bot.signature} ({bot.signature_detail})")
    finally:  # no thread outlives the check
        for thread in (early, url, ahead):
            if thread is not None:
                thread.succeeds()


def _bot_update(
    d: Deployment, snap: ReleaseSnapshot, include_security: bool, url: Beside[str | None]
) -> tuple[UpdateInfo | None, list[str]]:
    """The newest release `snap` offers, and what installing it would leave behind."""
    offered = snap.offered()
    if not offered:
        return None, []
    local = Beside(lambda: releases.local_commit_warnings(d.repo, snap, offered[-1]))
    try:
        info = releases.update_info(d.repo, snap, offered[-1],
                                    include_security=include_security,
                                    download_url=url.result())
    finally:
        local.succeeds()
    return info, local.result()

