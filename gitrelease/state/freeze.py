"""`pip freeze` of the deployment's interpreter, for a backup's manifest (a rollback brings the
package set back from it), remembered while that interpreter's packages stay as they are.

`pip freeze` costs about a second of CPU (most of it pip importing itself), on the same cores
as the archive's compression, for every backup. Its output changes only when a distribution
is installed or removed, and each of those adds or removes a ``*.dist-info`` (or
``.egg-info``, or a ``.pth``) entry in a folder of the interpreter's ``sys.path``, which
changes that folder's mtime. So the output is kept with a key: the interpreter's real path
and the (mtime_ns, size, inode) of every ``sys.path`` entry. The key is read by starting the
interpreter without pip (tens of milliseconds). A folder changed in the last two seconds is
not trusted to have settled (git's "racily clean" rule): its freeze is not remembered.

Kept in ``$XDG_CACHE_HOME/gitrelease`` (else ``~/.cache/gitrelease``), one 0600 file per
interpreter; when that cannot be read or written, pip runs every time, as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from gitrelease.core.fsutil import atomic_write

__all__ = ["PipFreeze"]

_SETTLED_NS = 2_000_000_000
_PATHS = "import json, sys; print(json.dumps([sys.version, sys.prefix, sys.path]))"


class PipFreeze:
    """`pip freeze --all` of `python`, started now (unless remembered) and read when needed."""

    def __init__(self, python: str) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._known: str | None = None
        self._file, self._key = _cache_entry(python)
        if self._file is not None and self._key is not None:
            self._known = _remembered(self._file, self._key)
            if self._known is not None:
                return
        with suppress(OSError, subprocess.SubprocessError):
            self._process = subprocess.Popen(
                [python, "-m", "pip", "freeze", "--all"], stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)

    def result(self) -> str | None:
        if self._known is not None:
            return self._known
        if self._process is None:
            return None
        try:
            out, _ = self._process.communicate(timeout=60)
        except subprocess.SubprocessError:
            self.stop()
            return None
        if self._process.returncode != 0:
            return None
        if self._file is not None and self._key is not None:
            with suppress(OSError):
                atomic_write(self._file, json.dumps({"key": self._key, "freeze": out}).encode())
        self._known = out
        return out

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitrelease"


def _cache_entry(python: str) -> tuple[Path | None, Any]:
    """Where `python`'s freeze is kept, and the key it is valid for (None: not to be
    remembered now, its packages changed a moment ago or cannot be looked at)."""
    try:
        real = os.path.realpath(python)
        shown = subprocess.run([python, "-c", _PATHS], capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL, check=True).stdout
        version, prefix, paths = json.loads(shown)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None, None
    name = hashlib.sha256(f"{real}\0{prefix}".encode()).hexdigest()[:24]
    now = time.time_ns()
    stamps: list[Any] = []
    for entry in paths:
        if not entry:  # the working directory: not where an interpreter's packages are
            continue
        try:
            found = os.stat(entry)
        except OSError:
            stamps.append([entry, None])
            continue
        if now - found.st_mtime_ns < _SETTLED_NS:
            return _cache_dir() / f"freeze-{name}.json", None
        stamps.append([entry, found.st_mtime_ns, found.st_size, found.st_ino])
    try:
        binary = os.stat(real)
    except OSError:
        return None, None
    return (_cache_dir() / f"freeze-{name}.json",
            [real, version, prefix, binary.st_mtime_ns, binary.st_size, stamps])


def _remembered(file: Path, key: Any) -> str | None:
    try:
        kept = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(kept, dict) and kept.get("key") == key and isinstance(kept.get("freeze"), str):
        return str(kept["freeze"])
    return None
