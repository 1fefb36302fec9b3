"""One operation in a fresh process, so that its peak memory is its own.

    python -m tests.benchmarks.child idle ROOT
    python -m tests.benchmarks.child backup ROOT          # prints the backup's id too
    python -m tests.benchmarks.child restore ROOT BACKUP_ID

Prints one JSON line: the process's own peak RSS in MiB, and the backup id where there is
one. The peak is ``VmHWM`` of /proc/self/status: ``ru_maxrss`` would also count the parent's
pages that the forked child held for a moment before it exec'd this interpreter. What the
process's own children (``pip freeze``, git) use is not counted. The deployment's settings
decide the compression.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path
from typing import Any


async def _main(operation: str, root: Path, backup_id: str | None) -> dict[str, Any]:
    from gitrelease.manager import ReleaseManager

    async with await ReleaseManager.open(root) as manager:
        if operation == "idle":  # imports, settings and the index: the floor under the others
            await manager.index()
            return {}
        if operation == "backup":
            backup = await manager.create_backup("full", {"keep": True})
            return {"backup_id": backup.id}
        if operation == "restore" and backup_id is not None:
            result = await manager.restore_backup(backup_id, {"confirm": True})
            if result.safety_backup is not None:
                await manager.delete_backup(result.safety_backup.id, confirm=True)
            return {}
    raise SystemExit(f"unknown operation {operation!r}")


def peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    # Elsewhere (macOS: bytes) the rusage figure, which may include the parent's pages.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    operation, root, *rest = sys.argv[1:]
    answer = asyncio.run(_main(operation, Path(root), rest[0] if rest else None))
    answer["peak_mib"] = peak_mib()
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
