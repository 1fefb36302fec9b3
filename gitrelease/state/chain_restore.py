"""Staging the files of an incremental backup: from each archive of its chain, then rebuilt.

A file an incremental backup records as its base's is unpacked from the archive of the chain
that stores it; a database stored as pages is the snapshot of the backup that stored it whole
with each later delta written into it, in order (`pages.rebuild`). Every archive read is
verified as it is unpacked (its sha256 against the index, each member against its manifest),
and every file staged must then hash to the sha256 the restored backup records for it; a
rebuilt database must also pass ``PRAGMA integrity_check``. Nothing live is touched here: the
restore swaps in what this returns (`placing.replace`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from gitrelease.core.errors import VerificationFailed
from gitrelease.state.archive import sha256_file
from gitrelease.state.incremental import Chain, ChainBroken, Link, holder
from gitrelease.state.pages import Assembly
from gitrelease.state.snapshot import integrity_problem
from gitrelease.state.unpack import extract_safely

__all__ = ["stage_chain"]


def stage_chain(
    chain: Chain, paths: Mapping[str, Path], staging: Path,
    entries: Mapping[str, Mapping[str, Any]], manifests: Mapping[str, dict[str, Any]], *,
    verify: bool, durable: set[str], shown: Callable[[str], str], private: frozenset[str],
) -> dict[str, Path]:
    """Stage `entries` (the newest backup's files to restore, by name) under `staging`.

    `paths` and `manifests`: each link's archive and manifest, by backup id. With `verify`,
    each archive read is checked against the sha256 the index has for it. The archives are
    read newest first, each once: a database stored as pages is put together as they come
    (`pages.Assembly`), the deltas straight from the archives. Returns name -> staged path,
    each file with the mode the newest backup records.
    """
    recipes = {name: holder(chain, name) for name in entries}
    wanted: dict[str, set[str]] = {}
    readers: dict[str, dict[str, Callable[[IO[bytes]], None]]] = {}
    assemblies: dict[str, Assembly] = {}
    # A rebuilt database is checked as soon as it is whole, beside the rest of the unpacking
    # (the archive it began with still has its other members to read).
    checks = ThreadPoolExecutor(1, thread_name_prefix="rebuilt-check")
    checked: dict[str, Future[None]] = {}
    try:
        for number, (name, steps) in enumerate(sorted(recipes.items())):
            if len(steps) == 1:
                link, entry = steps[0]
                wanted.setdefault(link.backup.id, set()).add(_member(entry))
                continue
            newest = steps[-1][1]
            page_size, page_count = int(newest["page_size"]), int(newest["page_count"])
            if page_count * page_size != int(entries[name]["size"]):
                raise VerificationFailed(f"backup {chain.newest.backup.id}: the pages of "
                                         f"{shown(name)} do not add up to its size")
            assembly = Assembly(staging / f"rebuilt-{number}.db", page_size, page_count,
                                shown(name))
            assemblies[name] = assembly
            first_link, first = steps[0]
            readers.setdefault(first_link.backup.id, {})[_member(first)] = _then_check(
                assembly, checks, checked, name, entries[name], shown, chain.newest)
            for link, entry in steps[1:]:
                readers.setdefault(link.backup.id, {})[_member(entry)] = assembly.delta(
                    int(entry["page_count"]))
    except BaseException as exc:
        checks.shutdown()
        for assembly in assemblies.values():
            assembly.close()
        if isinstance(exc, KeyError | TypeError | ValueError):
            raise VerificationFailed(f"backup {chain.newest.backup.id}: the pages of a "
                                     "database are recorded wrongly in its chain") from None
        raise
    staged: dict[str, dict[str, Path]] = {}
    try:
        for number in range(len(chain.links) - 1, -1, -1):
            link = chain.links[number]
            names = wanted.get(link.backup.id, set())
            if not names and link.backup.id not in readers and link is not chain.newest:
                continue  # the newest is read all the same: a restore verifies what it names
            try:
                staged[link.backup.id] = extract_safely(
                    paths[link.backup.id], staging / f"chain-{number}",
                    manifests[link.backup.id], wanted=names,
                    checksum=link.backup.checksum if verify else None,
                    durable={n for n in names if n in durable}, shown=shown,
                    private=private, consume=readers.get(link.backup.id))
            except VerificationFailed as exc:
                if link is chain.newest:
                    raise
                raise ChainBroken(f"backup {chain.newest.backup.id} needs {link.backup.id}, "
                                  f"which fails its check: {exc.message}",
                                  broken=link.backup.id, cause=exc.message) from None
        for future in checked.values():
            future.result()
    finally:
        checks.shutdown(wait=True, cancel_futures=True)
        for assembly in assemblies.values():
            assembly.close()
    result: dict[str, Path] = {}
    for name, steps in recipes.items():
        if name in assemblies:
            target = assemblies[name].path
        else:
            link, entry = steps[0]
            target = staged[link.backup.id][_member(entry)]
            _check(name, target, entries[name], rebuilt=False, shown=shown,
                   backup=chain.newest)
        mode = 0o600 if name in private else stat.S_IMODE(int(entries[name]["mode"])) & 0o777
        os.chmod(target, mode)
        result[name] = target
    return result


def _then_check(
    assembly: Assembly, checks: ThreadPoolExecutor, checked: dict[str, Future[None]],
    name: str, entry: Mapping[str, Any], shown: Callable[[str], str], backup: Link,
) -> Callable[[IO[bytes]], None]:
    """The reader of the snapshot a chain began with: it completes `assembly`, then hands
    the rebuilt file to `checks`."""
    def read(source: IO[bytes]) -> None:
        assembly.whole(source)
        assembly.close()
        checked[name] = checks.submit(_check, name, assembly.path, entry, rebuilt=True,
                                      shown=shown, backup=backup)
    return read


def _member(entry: Mapping[str, Any]) -> str:
    """The archive member holding an entry's bytes: the file itself, or its page delta."""
    return str(entry["delta"]["member"]) if entry.get("stored") == "delta" else str(entry["path"])


def _check(name: str, path: Path, entry: Mapping[str, Any], *, rebuilt: bool,
           shown: Callable[[str], str], backup: Link) -> None:
    """The staged file is what the restored backup recorded: its size and whole sha256,
    and a rebuilt database passes SQLite's full integrity check."""
    if path.stat().st_size != int(entry["size"]) or sha256_file(path) != entry["sha256"]:
        raise VerificationFailed(
            f"backup {backup.backup.id}: {shown(name)} as rebuilt from its chain does not "
            "match its checksum")
    if rebuilt:
        problem = integrity_problem(path, thorough=True)
        if problem is not None:
            raise VerificationFailed(
                f"backup {backup.backup.id}: {shown(name)} as rebuilt from its chain fails "
                f"its integrity check ({problem})")
