"""The Discord suite's fixture `h` (see tests/discord_ext/harness.py)."""

from tests.discord_ext.harness import h

__all__ = ["h"]
