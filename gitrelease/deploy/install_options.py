"""The options of one install, checked as they are made so no step sees a bad value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitrelease.core.errors import InvalidInput
from gitrelease.core.options import options_from

__all__ = ["InstallOptions"]

# A version, or a tag name as people type them; never starting with "-", so never an option.
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!/-]{0,99}$")
_BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class InstallOptions:
    """How to install; `from_mapping` accepts the specification's option names."""

    to_version: str | None = None
    backup_before: bool = True
    restart_required: bool = True
    force: bool = False
    backup_name: str | None = None
    dry_run: bool = False
    initiated_by: str = "system"
    # Carry edits to tracked files over the checkout (also: setting local_changes = "carry").
    keep_local_changes: bool = False
    # Reasons to ask (ConfirmationRequired.reasons) that a person was shown and accepted:
    # the install goes past exactly these, and still stops at any other. `force` passes all.
    accept: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("backup_before", "restart_required", "force", "dry_run",
                     "keep_local_changes"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(name, getattr(self, name), "true or false")
        if not isinstance(self.accept, tuple | list) or len(self.accept) > 20 or not all(
                isinstance(r, str) and 0 < len(r) <= 1000 for r in self.accept):
            raise InvalidInput("accept", self.accept,
                               "a list of at most 20 reasons, as a refusal gave them")
        object.__setattr__(self, "accept", tuple(self.accept))
        if self.to_version is not None:
            allowed = "a release version such as 2.1.0, or a release tag name such as v2.1.0"
            if not isinstance(self.to_version, str):
                raise InvalidInput("to_version", self.to_version, allowed)
            if not _TAG_NAME.match(self.to_version) or ".." in self.to_version:
                raise InvalidInput("to_version", self.to_version, allowed)
        if self.backup_name is not None:
            if not isinstance(self.backup_name, str) or not _BACKUP_NAME.match(self.backup_name):
                raise InvalidInput(
                    "backup_name", self.backup_name,
                    "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
            if not self.backup_before:
                raise InvalidInput(
                    "backup_name", self.backup_name, "a name only when a backup is taken",
                    reason="no backup is taken with backup_before off")
        if not isinstance(self.initiated_by, str) or not 0 < len(self.initiated_by) <= 100:
            raise InvalidInput("initiated_by", self.initiated_by, "1-100 characters")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> InstallOptions:
        return options_from(cls, options, {
            "force_update": "force", "to": "to_version", "target_version": "to_version",
            "user_id": "initiated_by", "carry_local_changes": "keep_local_changes"})
