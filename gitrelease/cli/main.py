"""The `gitrelease` command: a thin shell over `ReleaseManager`, and its one error handler.

Contract: `gitrelease [--root PATH] [--json] COMMAND ...`. With --json, stdout holds exactly
the `to_dict()` form of the result, or ``{"error": {...}}``; without it, readable text. Every
error is one clear line and a non-zero exit code; never a traceback. The grammar is in
`gitrelease.cli.parser`, the handlers in `gitrelease.cli.commands` (and the modules it
registers). Modules are imported per command, since start-up time is part of the product.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from gitrelease.cli.commands import COMMANDS
from gitrelease.cli.common import print_json
from gitrelease.cli.output import visible_output
from gitrelease.cli.parser import FLAG_FOR_FIELD, FLAG_FOR_FIELD_IN
from gitrelease.cli.parser import build_parser as _parser
from gitrelease.core.errors import GitReleaseError, InvalidInput, UnsupportedPlatform

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever it prints is shown, never acted on (`visible_output`)."""
    with visible_output():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args_list  # until the command line parses, a good guess is enough
    command = ""
    try:
        if os.name == "nt":
            raise UnsupportedPlatform("gitrelease supports Linux and macOS; Windows is not "
                                      "supported yet")
        args = _parser().parse_args(args_list)
        as_json, command = args.json, args.command
        return COMMANDS[command](args)
    except InvalidInput as exc:
        flag = FLAG_FOR_FIELD_IN.get(command, {}).get(exc.field) or FLAG_FOR_FIELD.get(
            exc.field)
        return _fail(exc.renamed(flag) if flag else exc, as_json)
    except GitReleaseError as exc:
        return _fail(exc, as_json)
    except KeyboardInterrupt:
        return _fail(GitReleaseError("interrupted", hint="run the command again"), as_json, 130)
    except BrokenPipeError:
        # The reader went away (`gitrelease status | head`): not an error worth a trace.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(GitReleaseError(f"{exc.strerror or exc}{where}",
                                     hint="check the path and its permissions"), as_json, 74)
    except Exception as exc:  # the one place an unexpected error becomes a line, not a trace
        error = GitReleaseError(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a bug in gitrelease; please report it with the command you ran")
        return _fail(error, as_json, 70)


def _fail(exc: GitReleaseError, as_json: bool, exit_code: int | None = None) -> int:
    if as_json:
        print_json(exc.to_dict())
    else:
        hint = f" ({exc.hint})" if exc.hint else ""
        print(f"gitrelease: error: {exc.message}{hint}", file=sys.stderr)
    return exc.exit_code if exit_code is None else exit_code
