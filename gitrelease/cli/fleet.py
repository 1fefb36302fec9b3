"""`gitrelease fleet status` and `gitrelease agent`: the deployments that share one index.

Registered by `gitrelease.cli.main`, whose conventions they follow: --json prints the result,
errors are one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gitrelease.cli.common import print_json, run
from gitrelease.core.errors import InvalidInput

__all__ = ["COMMANDS", "add_parsers"]

FLEET_ACTIONS = ("status",)


def add_parsers(commands: Any) -> None:
    fleet = commands.add_parser("fleet", help="the deployments that share this index")
    fleet.add_argument("action", metavar="|".join(FLEET_ACTIONS))
    agent = commands.add_parser("agent", help="report this deployment to the shared index "
                                              "every fleet_heartbeat_seconds (a systemd "
                                              "service beside the bot)")
    agent.add_argument("--once", action="store_true", help="report once, then exit")


def _cmd_fleet(args: argparse.Namespace) -> int:
    from gitrelease.core.models import utcnow

    if args.action not in FLEET_ACTIONS:
        raise InvalidInput("ACTION", args.action, FLEET_ACTIONS)
    instances, stale = run(args, lambda m: m.fleet_status())
    now = utcnow()
    shown = [i.to_dict(now, stale) for i in instances]
    if args.json:
        print_json({"instances": shown, "stale_after_seconds": stale})
        return 0
    if not shown:
        print("no deployment has reported to this index yet (gitrelease agent, or the bot's "
              "extension, reports it)")
        return 0
    for instance, row in zip(instances, shown, strict=True):
        age = int((now - instance.heartbeat_at).total_seconds())
        shards = f", shards {','.join(map(str, row['shards']))}" if row["shards"] else ""
        tag = f" ({row['tag']})" if row["tag"] and row["tag"] != row["version"] else ""
        print(f"{row['group']:<10} {row['id']}  {row['version']}{tag}  {row['state'].upper()}"
              f"  on {row['host']}{shards}  (reported {age}s ago)")
    return 0


def _cmd_agent(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    async def work(manager: Any) -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await manager.run_agent(once=args.once, stop=stop)

    last = run(args, work)
    if args.json:
        print_json(last.to_dict())
    else:
        print(f"gitrelease agent: {last.id} at {last.version}, bot {last.health}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "fleet": _cmd_fleet,
    "agent": _cmd_agent,
}
