"""`gitrelease fleet status` and `gitrelease agent`: the deployments that share one index.

Registered by `gitrelease.cli.main`, whose conventions they follow: --json prints the result,
errors are one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gitrelease.cli.common import actor, number, print_json, run
from gitrelease.core.errors import InvalidInput

__all__ = ["COMMANDS", "add_parsers"]

FLEET_ACTIONS = ("status", "rollout", "rollouts", "resume", "pause", "promote", "abort")


def add_parsers(commands: Any) -> None:
    fleet = commands.add_parser("fleet", help="the deployments that share this index, and "
                                              "rollouts of a release across them")
    fleet.add_argument("action", metavar="|".join(FLEET_ACTIONS))
    fleet.add_argument("--to", metavar="VERSION", help="rollout: the release to roll out")
    fleet.add_argument("--canary", metavar="N", default="1",
                       help="rollout: instances in the first wave (default 1)")
    fleet.add_argument("--canary-group", metavar="GROUP",
                       help="rollout: the whole group is the first wave instead")
    fleet.add_argument("--max-parallel", metavar="K", default="1",
                       help="rollout: instances per later wave (default 1)")
    fleet.add_argument("--min-healthy-time", metavar="SECONDS", default="30",
                       help="rollout: how long each must run the release healthy (30)")
    fleet.add_argument("--healthy-deadline", metavar="SECONDS", default="600",
                       help="rollout: how long each may take to get there (600)")
    fleet.add_argument("--auto-revert", action="store_true",
                       help="rollout: if one fails, take every moved instance back")
    fleet.add_argument("--pause-after-canary", action="store_true",
                       help="rollout: once the canary is healthy, wait for fleet promote")
    fleet.add_argument("--id", metavar="ROLLOUT", help="resume, pause, promote, abort: "
                                                       "which rollout (default: the active "
                                                       "one)")
    fleet.add_argument("--why", metavar="TEXT", help="pause, promote, abort: the reason, "
                                                     "for the trail")
    agent = commands.add_parser("agent", help="report this deployment to the shared index "
                                              "every fleet_heartbeat_seconds (a systemd "
                                              "service beside the bot)")
    agent.add_argument("--once", action="store_true", help="report once, then exit")


def _cmd_fleet(args: argparse.Namespace) -> int:
    if args.action not in FLEET_ACTIONS:
        raise InvalidInput("ACTION", args.action, FLEET_ACTIONS)
    return {"status": _status, "rollout": _rollout, "rollouts": _rollouts,
            "resume": _resume, "pause": _pause, "promote": _pause,
            "abort": _abort}[args.action](args)


def _options(args: argparse.Namespace) -> Any:
    from gitrelease.core.fleet import RolloutOptions

    canary = int(number("--canary", args.canary, 1, 1000, whole=True))
    parallel = int(number("--max-parallel", args.max_parallel, 1, 1000, whole=True))
    group = args.canary_group
    if group is not None and (not group or len(group) > 50 or not group.replace(
            "-", "").replace("_", "").replace(".", "").isalnum()):
        raise InvalidInput("--canary-group", group, "an instance_group name")
    return RolloutOptions(
        canary=canary, canary_group=group, max_parallel=parallel,
        min_healthy_seconds=number("--min-healthy-time", args.min_healthy_time, 0, 86400),
        healthy_deadline_seconds=number("--healthy-deadline", args.healthy_deadline, 1,
                                         7 * 86400),
        auto_revert=args.auto_revert, pause_after_canary=args.pause_after_canary)


def _shown(rollout: Any) -> str:
    lines = [f"rollout {rollout.id} to {rollout.target}: {rollout.status.upper()}"
             + (f" ({rollout.reason})" if rollout.reason else "")
             + (f" [coordinated by {rollout.coordinator}, epoch {rollout.epoch}]"
                if rollout.coordinator else "")]
    lines += [f"  wave {a.wave}  {a.instance_id:<24} {a.state:<12} from {a.baseline}"
              + (f" (a revert goes to {a.revert_to})" if a.revert_to not in (None, a.baseline)
                 else "")
              + (f"  {a.detail}" if a.detail else "") for a in rollout.assignments]
    return "\n".join(lines)


def _drive(args: argparse.Namespace, rollout_id: str) -> int:
    def changed(rollout: Any) -> None:
        if not args.json:
            print(_shown(rollout), flush=True)

    ended = run(args, lambda m: m.drive_rollout(rollout_id, actor=actor(), on_change=changed))
    if args.json:
        print_json(ended.to_dict())
    return 0 if ended.status == "succeeded" else 1


def _rollout(args: argparse.Namespace) -> int:
    if not args.to:
        raise InvalidInput("--to", args.to, "the release to roll out (a tag or version)")
    options = _options(args)
    started = run(args, lambda m: m.start_rollout(args.to, options, actor=actor()))
    return _drive(args, started.id)


def _resume(args: argparse.Namespace) -> int:
    """Carry on a rollout whose coordinator is gone, from where the index says it is."""
    async def active(manager: Any) -> str:
        if args.id:
            return str(args.id)
        found = [r for r, _trail in await manager.rollouts(1) if r.status in
                 ("running", "paused", "reverting")]
        if not found:
            raise InvalidInput("--id", None, "a rollout id", reason="no rollout is active")
        return str(found[0].id)

    return _drive(args, run(args, active))


def _why(args: argparse.Namespace) -> str:
    why = args.why or {"pause": "paused", "promote": "promoted", "abort": "aborted"}[
        args.action] + " by hand"
    if len(why) > 500 or not why.isprintable():
        raise InvalidInput("--why", why, "up to 500 characters on one line")
    return why


def _pause(args: argparse.Namespace) -> int:
    promote = args.action == "promote"
    held = run(args, lambda m: m.pause_rollout(args.id, actor=actor(), why=_why(args),
                                               promote=promote))
    if args.json:
        print_json(held.to_dict())
    else:
        print(_shown(held))
    return 0


def _abort(args: argparse.Namespace) -> int:
    ended = run(args, lambda m: m.abort_rollout(args.id, actor=actor(), why=_why(args)))
    if args.json:
        print_json(ended.to_dict())
    else:
        print(_shown(ended))
    return 0


def _rollouts(args: argparse.Namespace) -> int:
    found = run(args, lambda m: m.rollouts(10))
    if args.json:
        print_json({"rollouts": [{**r.to_dict(), "trail": trail} for r, trail in found]})
        return 0
    if not found:
        print("no rollout yet")
    for rollout, trail in found:
        print(_shown(rollout))
        for entry in trail:
            print(f"    {entry['at'][:19]}  {entry['actor']}: {entry['action']} "
                  f"{entry['detail']}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from gitrelease.core.models import utcnow

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
        starts = instance.session_starts
        left = (f", {starts.left(now)}/{starts.total} session starts left" if starts
                else "")
        print(f"{row['group']:<10} {row['id']}  {row['version']}{tag}  {row['state'].upper()}"
              f"  on {row['host']}{shards}{left}  (reported {age}s ago)")
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
