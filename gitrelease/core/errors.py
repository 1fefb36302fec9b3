"""The one exception tree of gitrelease.

Every error a front-end can show is a `GitReleaseError` subclass with a stable `code` (for
`--json` output and for the cog's message table), a message that says what happened, a hint
that says what to do, and the exit code the CLI uses. Front-ends map *classes* to output in
one place each; nothing matches on message text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

__all__ = [
    "BackupFailed",
    "ConfirmationRequired",
    "DetachedHead",
    "DirtyWorkingTree",
    "DowngradeRefused",
    "FetchFailed",
    "GitCommandFailed",
    "GitReleaseError",
    "IndexBusy",
    "IndexFull",
    "IndexStoreError",
    "InsufficientDiskSpace",
    "InvalidInput",
    "InvalidSetting",
    "NoSuchVersion",
    "NotAGitRepository",
    "PythonVersionMismatch",
    "TagMoved",
    "TargetChanged",
    "UnsupportedPlatform",
    "UntrackedFilesInTheWay",
    "UpdateInProgress",
    "UsageError",
    "VerificationFailed",
]


class GitReleaseError(Exception):
    """Base of every error gitrelease reports to a person."""

    code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1
    default_hint: ClassVar[str] = ""

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "hint": self.hint}}

    def also(self, trouble: str) -> GitReleaseError:
        """Add a second failure met while this one was being handled (an audit row that
        could not be written on a full disk) to its message: this error is still the one
        reported, and the second is not lost either."""
        self.message = f"{self.message} (also: {trouble})"
        self.args = (self.message,)
        return self


class InvalidInput(GitReleaseError):
    """A value given by a person (flag, command option, setting) is not allowed."""

    code = "invalid_input"
    exit_code = 2

    def __init__(
        self, field: str, value: object, allowed: str | Iterable[str], *, reason: str = ""
    ) -> None:
        allowed_text = allowed if isinstance(allowed, str) else ", ".join(allowed)
        shown = "nothing" if value is None else _shorten(repr(value))  # never "None"
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"invalid {field}: {shown}{why}",
            hint=f"allowed: {allowed_text}",
            field=field,
            allowed=allowed_text,
        )
        self.field = field
        self.value = value
        self.allowed = allowed_text
        self.reason = reason

    def renamed(self, field: str) -> InvalidInput:
        """The same error, naming the field as the front-end calls it (a flag, an option)."""
        return InvalidInput(field, self.value, self.allowed, reason=self.reason)


class UsageError(GitReleaseError):
    """A command line that does not parse: unknown flag, missing value."""

    code = "usage_error"
    exit_code = 2
    default_hint = "run `gitrelease --help` or `gitrelease COMMAND --help`"


class InvalidSetting(GitReleaseError):
    """A settings file on disk holds a key or value the schema does not allow."""

    code = "invalid_setting"
    exit_code = 78  # EX_CONFIG

    def __init__(self, file: str, key: str | None, reason: str, *,
                 hint: str | None = None) -> None:
        """`key` None: the file as a whole is wrong (it does not parse, cannot be read)."""
        super().__init__(
            f"{file} {reason}" if key is None else f"{file}: setting {key!r} {reason}",
            hint=hint or (f"fix {file}" if key is None else f"fix or remove {key!r} in {file}"),
            file=file,
            key=key,
        )


class UnsupportedPlatform(GitReleaseError):
    code = "unsupported_platform"
    exit_code = 69  # EX_UNAVAILABLE
    default_hint = "run gitrelease on Linux or macOS"


class UpdateInProgress(GitReleaseError):
    code = "update_in_progress"
    exit_code = 75  # EX_TEMPFAIL: try again later
    default_hint = "wait for the running operation to finish, then try again"


class DirtyWorkingTree(GitReleaseError):
    code = "dirty_working_tree"
    exit_code = 3
    default_hint = "commit, stash or revert the changes to tracked files (git status shows them)"


class UntrackedFilesInTheWay(GitReleaseError):
    code = "untracked_files_in_the_way"
    exit_code = 3
    default_hint = "move those files aside; gitrelease never overwrites untracked or ignored files"


class NoSuchVersion(GitReleaseError):
    code = "no_such_version"
    exit_code = 4
    default_hint = "run `gitrelease check --details` to list the available releases"


class DowngradeRefused(GitReleaseError):
    code = "downgrade_refused"
    exit_code = 5
    default_hint = (
        "going back is a rollback: gitrelease rollback VERSION --yes")


class TagMoved(GitReleaseError):
    code = "tag_moved"
    exit_code = 6
    default_hint = (
        "a published release tag changed on the remote; find out why before trusting it "
        "(--force installs the commit the tag had when it was first fetched)"
    )


class PythonVersionMismatch(GitReleaseError):
    code = "python_version_mismatch"
    exit_code = 7


class InsufficientDiskSpace(GitReleaseError):
    code = "insufficient_disk_space"
    exit_code = 8
    # What refused says what to do: only the install's own minimum names its setting.
    default_hint = "free some disk space on that disk, then try again"


class ConfirmationRequired(GitReleaseError):
    """A release needs a deliberate yes: breaking changes, or larger than allowed."""

    code = "confirmation_required"
    exit_code = 15
    default_hint = "review it with `gitrelease check --details`, then install with --force"

    @property
    def reasons(self) -> tuple[str, ...]:
        """Each reason on its own (the message joins them), as `accept` takes them."""
        return tuple(self.details.get("reasons") or (self.message,))


class TargetChanged(GitReleaseError):
    """What was confirmed is no longer what the command would do; nothing was done."""

    code = "target_changed"
    exit_code = 25
    default_hint = "run the command again to see what it would do now"


class BackupFailed(GitReleaseError):
    """A backup could not be written; nothing of it is left behind."""

    code = "backup_failed"
    exit_code = 19


class GitCommandFailed(GitReleaseError):
    code = "git_command_failed"
    exit_code = 10


class FetchFailed(GitReleaseError):
    code = "fetch_failed"
    exit_code = 11
    default_hint = "check the network and the remote's URL (git remote -v), then try again"


class VerificationFailed(GitReleaseError):
    code = "verification_failed"
    exit_code = 12


class NotAGitRepository(GitReleaseError):
    code = "not_a_git_repository"
    exit_code = 13
    default_hint = "run inside the bot's git checkout, or pass --root / set GITRELEASE_ROOT"


class IndexStoreError(GitReleaseError):
    """The SQLite index cannot be opened or was written by a newer gitrelease."""

    code = "index_error"
    exit_code = 14


class IndexBusy(IndexStoreError):
    """Another process (another gitrelease, a tool with the file open) held the index for
    longer than gitrelease waits: a passing condition, nothing is wrong with the index."""

    code = "index_busy"
    exit_code = 75  # EX_TEMPFAIL: try again later
    default_hint = ("retry in a moment; nothing is wrong with the index (index_busy_timeout "
                    "is how long gitrelease waits)")


class IndexFull(IndexStoreError):
    """The disk the index is on is full: what was being written is not, and what was
    written before is intact."""

    code = "index_disk_full"
    exit_code = 14
    default_hint = "free space on that disk, then retry; nothing of the index is lost"


class RestartFailed(GitReleaseError):
    """The bot could not be restarted by the configured restart_method."""

    code = "restart_failed"
    exit_code = 23


class SignatureRefused(GitReleaseError):
    """require_signed_tags is on and a release tag's signature is missing, unknown or bad."""

    code = "signature_refused"
    exit_code = 24
    default_hint = ("import the release signer's key (GPG) or list it in "
                    "gpg.ssh.allowedSignersFile (SSH), or ask for a properly signed tag")

    @classmethod
    def of_tag(cls, tag: str, state: str, detail: str) -> SignatureRefused:
        return cls(f"{tag} is refused: require_signed_tags is on and its signature is "
                   f"{state} ({detail})")


class DetachedHead(GitReleaseError):
    """A release is committed to a branch, and HEAD is on none."""

    code = "detached_head"
    exit_code = 3
    default_hint = "check out the branch to release from (git switch main)"


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
