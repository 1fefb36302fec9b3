"""Finding the deployment's working tree: --root, else $GITRELEASE_ROOT, else the cwd's.

Apart from the runner so that naming the tree (every command does, first) opens no
repository object it does not need.
"""

from __future__ import annotations

import os
from pathlib import Path

import git

from gitrelease.core.errors import NotAGitRepository

__all__ = ["deployment_root", "find_toplevel"]


def deployment_root(root: Path | None = None) -> Path:
    """`root`, else $GITRELEASE_ROOT, else the git top-level of the working directory."""
    if root is not None:
        return root
    env_root = os.environ.get("GITRELEASE_ROOT")
    return Path(env_root) if env_root else find_toplevel(Path.cwd())


def find_toplevel(start: Path) -> Path:
    """The working tree that contains `start` (the git top-level of the current directory)."""
    try:
        repo = git.Repo(start, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotAGitRepository(f"{start} is not inside a git working tree") from None
    try:
        if repo.working_tree_dir is None:
            raise NotAGitRepository(f"{start} is a bare repository, not a working tree")
        return Path(repo.working_tree_dir)
    finally:
        repo.close()
