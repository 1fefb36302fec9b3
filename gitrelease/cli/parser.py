"""The `gitrelease` command line's grammar: every command and flag, and the flags' names.

Built apart from the handlers so that what a person may type reads in one place. A usage
error raises `UsageError`, so it is one line and exit status 2 like every other error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from gitrelease.cli import fleet as cli_fleet
from gitrelease.cli import release as cli_release
from gitrelease.cli import restart as cli_restart
from gitrelease.core.errors import UsageError

__all__ = [
    "BACKUP_RANGES",
    "BACKUP_SORTS",
    "BACKUP_TYPES",
    "FLAG_FOR_FIELD",
    "FLAG_FOR_FIELD_IN",
    "RANGES",
    "RESTORE_TYPES",
    "UPDATE_TYPES",
    "build_parser",
]

UPDATE_TYPES = ("all", "bot", "packages", "config", "dependencies")
RANGES = ("1d", "7d", "30d")
BACKUP_TYPES = ("full", "database", "config", "data_only")
BACKUP_RANGES = ("7d", "30d", "90d", "all")
BACKUP_SORTS = ("date", "size", "name", "type")
RESTORE_TYPES = ("all", "database", "config", "data")
# The engine names fields after the specification; a person typed these flags.
FLAG_FOR_FIELD = {
    "update_type": "--type", "check_type": "--type", "to_version": "--to",
    "time_range": "--range", "backup_type": "--type", "restore_type": "--type",
    "description": "--description", "limit": "--limit", "sort_by": "--sort",
    "confirm": "--yes", "backup_id": "ID", "target_version": "TARGET",
    "setting_category": "CATEGORY", "setting_name": "NAME", "setting_value": "VALUE",
}
FLAG_FOR_FIELD_IN = {"install": {"backup_name": "--backup-name"},
                     "backup": {"backup_name": "--name"}}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.prog != "gitrelease":
            # --json is also taken after the command: `gitrelease check --json`.
            self.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                              help="print results as JSON on stdout")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gitrelease",
        description="Git-native release manager: releases are git tags.",
    )
    parser.add_argument("--root", type=_path, help="the deployment's git working tree "
                        "(default: $GITRELEASE_ROOT, else the git top-level of the cwd)")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    check = commands.add_parser("check", help="what releases are available")
    check.add_argument("--type", default="all", metavar="|".join(UPDATE_TYPES))
    check.add_argument("--details", action="store_true", help="full changelog and all releases")
    check.add_argument("--no-security", action="store_true",
                       help="skip the security markers")

    install = commands.add_parser("install", help="install the newest (or a given) release")
    install.add_argument("--type", required=True, metavar="|".join(UPDATE_TYPES))
    install.add_argument("--to", metavar="VERSION", help="a release version, e.g. 2.1.0")
    install.add_argument("--no-backup", action="store_true", help="install without a backup")
    install.add_argument("--no-restart", action="store_true", help="do not restart the bot")
    install.add_argument("--force", action="store_true",
                         help="install despite breaking changes, size or a moved tag")
    install.add_argument("--backup-name", metavar="NAME", help="name of the pre-update backup")
    install.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    install.add_argument("--keep-local-changes", action="store_true",
                         help="carry edits to tracked files (a config the README says to "
                         "edit) over the checkout; a conflict undoes the install")

    status = commands.add_parser("status", help="version, health and update history")
    status.add_argument("--history", action="store_true", help="list recent update sessions")
    status.add_argument("--no-metrics", action="store_true", help="leave out disk and memory")
    status.add_argument("--range", default="7d", metavar="|".join(RANGES))

    journal = commands.add_parser("journal", help="the journalled steps of an update session")
    journal.add_argument("session", nargs="?", help="session id (default: the latest)")

    rollback = commands.add_parser("rollback", help="back to an older release, data included")
    rollback.add_argument("target", metavar="TARGET",
                          help="a version or tag (2.0.0, v2.0.0), previous, or last_backup")
    rollback.add_argument("--yes", action="store_true", help="confirm the rollback")
    rollback.add_argument("--no-backup", action="store_true",
                          help="skip the backup of the current state")
    rollback.add_argument("--no-restore-config", action="store_true",
                          help="keep today's config files (.env, settings)")
    rollback.add_argument("--force", action="store_true",
                          help="roll back the code even without a backup of that release")
    rollback.add_argument("--keep-local-changes", action="store_true",
                          help="carry edits to tracked files over the checkout; a conflict "
                          "undoes the rollback")

    _backup_parser(commands)

    schedule = commands.add_parser("schedule", help="automatic updates")
    schedule_actions = schedule.add_subparsers(dest="action", metavar="ACTION",
                                               parser_class=_Parser)
    schedule_actions.required = True
    add = schedule_actions.add_parser("add", help="a new schedule")
    add.add_argument("--type", required=True, metavar="daily|weekly|monthly|custom")
    add.add_argument("--time", metavar="HH:MM", help="in the timezone setting")
    add.add_argument("--days", metavar="D1,D2", help="weekdays, days of the month, or a "
                     "5-field cron expression for custom")
    add.add_argument("--update-types", required=True, metavar="T1,T2",
                     help="bot, packages, config, dependencies, or all")
    add.add_argument("--disabled", action="store_true", help="add it switched off")
    schedule_actions.add_parser("list", help="schedules with their next run")
    for action in ("remove", "enable", "disable"):
        one = schedule_actions.add_parser(action, help=f"{action} a schedule")
        one.add_argument("id", metavar="ID")
    schedule_actions.add_parser("run-due", help="run what is due (for cron or a systemd timer)")

    settings = commands.add_parser("settings", help="show and change settings")
    settings_actions = settings.add_subparsers(dest="action", metavar="ACTION",
                                               parser_class=_Parser)
    settings_actions.required = True
    show = settings_actions.add_parser("show", help="each value and the layer it comes from")
    show.add_argument("category", nargs="?", metavar="CATEGORY",
                      help="update, backup, notification or schedule")
    change = settings_actions.add_parser("set", help="set a runtime value (data/settings.toml)")
    change.add_argument("category", metavar="CATEGORY")
    change.add_argument("name", metavar="NAME")
    change.add_argument("value", metavar="VALUE", help="true/false, a number, text, or a list "
                        "as a,b,c or a JSON array")
    reset = settings_actions.add_parser("reset", help="remove a runtime value")
    reset.add_argument("category", metavar="CATEGORY")
    reset.add_argument("name", metavar="NAME")

    cli_restart.add_parsers(commands)
    cli_release.add_parsers(commands)
    cli_fleet.add_parsers(commands)
    recover = commands.add_parser(
        "recover", help="rebuild a deployment on a new host from its origin and its offsite "
                        "copies: clone, check out the newest good backup's commit, restore it")
    recover.add_argument("--origin", required=True, metavar="URL", help="the bot's git origin")
    recover.add_argument("--offsite", required=True, metavar="s3://BUCKET/PREFIX",
                         help="where the offsite copies are (offsite_url on the old host)")
    recover.add_argument("--endpoint", default="", metavar="URL",
                         help="the storage's endpoint for services other than AWS S3")
    recover.add_argument("--key-file", type=_path, metavar="FILE",
                         help="the key the copies were encrypted with (offsite_key_file)")
    recover.add_argument("--backup", metavar="ID", help="this backup, not the newest full one")
    recover.add_argument("directory", metavar="DIR", type=_path,
                         help="a new or empty directory for the deployment")
    demo = commands.add_parser("demo", help="build a throw-away deployment and show "
                               "check -> install -> status on it")
    demo.add_argument("--keep", action="store_true", help="keep the demo directory")
    return parser


def _backup_parser(commands: Any) -> None:
    backup = commands.add_parser("backup", help="archives of the state git does not keep")
    actions = backup.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    create = actions.add_parser("create", help="take a backup now")
    create.add_argument("--type", default="full", metavar="|".join(BACKUP_TYPES))
    create.add_argument("--no-compress", action="store_true", help="a plain .tar archive")
    create.add_argument("--name", metavar="NAME", help="a name to find it by (unique)")
    create.add_argument("--include-logs", action="store_true", help="add the update logs")
    create.add_argument("--description", metavar="TEXT")
    create.add_argument("--keep", action="store_true", help="never prune this backup")
    create.add_argument("--full", action="store_true",
                        help="store everything, not only what changed since the last backup")
    listing = actions.add_parser("list", help="backups, newest first")
    listing.add_argument("--type", metavar="|".join(BACKUP_TYPES))
    listing.add_argument("--range", default="30d", metavar="|".join(BACKUP_RANGES))
    listing.add_argument("--limit", default="20", metavar="1-50")
    listing.add_argument("--sort", default="date", metavar="|".join(BACKUP_SORTS))
    verify = actions.add_parser("verify", help="re-read an archive against its checksums "
                                               "(--offsite: download the offsite copies)")
    verify.add_argument("id", metavar="ID", nargs="?", help="backup id or name")
    verify.add_argument("--offsite", action="store_true",
                        help="download the offsite copies and check each against its digest")
    verify.add_argument("--sample", metavar="N%",
                        help="with --offsite: check only N percent of them, chosen at random")
    verify.add_argument("--deep", action="store_true",
                        help="also check each file against the manifest, not only the "
                             "archive's checksum")
    restore = actions.add_parser("restore", help="put a backup's files back in place")
    restore.add_argument("id", metavar="ID", help="backup id or name")
    restore.add_argument("--yes", action="store_true", help="confirm: live files are replaced")
    restore.add_argument("--type", default="all", metavar="|".join(RESTORE_TYPES))
    restore.add_argument("--no-verify", action="store_true", help="skip the verification")
    delete = actions.add_parser("delete", help="delete a backup and its archive")
    delete.add_argument("id", metavar="ID", help="backup id or name")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    push = actions.add_parser("push", help="copy a backup to the offsite storage "
                                           "(offsite_url), or upload the queued ones")
    push.add_argument("id", metavar="ID", nargs="?", help="backup id or name")
    push.add_argument("--queued", action="store_true",
                      help="upload the backups queued for offsite, and failed ones due again")
    push.add_argument("--force", action="store_true",
                      help="with --queued: retry failed uploads now, not when they are due")
    prune = actions.add_parser("prune", help="apply max_backups and backup_retention_days")
    prune.add_argument("--dry-run", action="store_true", help="show, delete nothing")
    prune.add_argument("--offsite", action="store_true",
                       help="prune the offsite copies (offsite_max_backups, "
                            "offsite_retention_days) instead")
    key = actions.add_parser("key-new", help="write a new offsite encryption key to FILE "
                                             "(0600; keep a copy apart from the host)")
    key.add_argument("file", metavar="FILE", type=_path)


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)
