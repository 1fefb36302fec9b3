"""gitrelease: a git-native release manager for Python Discord bots.

Releases are git tags; an update is a fetch and a checkout of a newer tag. Front-ends (the
CLI, the Discord cog, git hooks) call `gitrelease.manager.ReleaseManager`. This package never
imports discord. Its own version is the VERSION file, read through the package metadata.
"""

__all__: list[str] = []
