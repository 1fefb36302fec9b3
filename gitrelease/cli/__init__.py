"""The command line: `gitrelease` (argparse, text and JSON rendering, the demo)."""

from gitrelease.cli.main import main

__all__ = ["main"]
