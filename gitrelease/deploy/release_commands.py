"""The release's own commands (post-update, health check), run as steps of an install.

Each release says in its own [tool.gitrelease] what to run once it is checked out, so it
carries its own migrations and health check; the commands see the session in their
environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitrelease.core.models import UpdateSession, UpdateStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitrelease.core.tether import Group
    from gitrelease.deploy.context import Deployment
    from gitrelease.deploy.journal import StepRunner

__all__ = ["run_release_command", "run_release_steps"]


async def run_release_steps(d: Deployment, step: StepRunner, session: UpdateSession) -> None:
    """The target release's own post-update command and health check, if it has them."""
    from gitrelease.core.settings import command_argv, load_settings

    # The release is checked out: its [tool.gitrelease] (with the runtime overrides) now
    # says what to run, so each release carries its own migrations and health check.
    loaded = await d.in_thread(load_settings, d.root, d.data_dir)
    target = loaded.settings
    planned = [name for name, command in (("post_update", target.post_update_command),
                                          ("health_check", target.health_check_command))
               if command_argv(command)]
    # Written before either runs: recovery must know they were due even if neither began.
    await step.note("plan:release", ",".join(planned))
    if command_argv(target.post_update_command):
        await step("post_update", UpdateStatus.INSTALLING, 88, run_release_command, d, session,
                   "post-update command", target.post_update_command,
                   target.post_update_timeout, step.recorder("post_update"))
    if command_argv(target.health_check_command):
        await step("health_check", UpdateStatus.INSTALLING, 95, run_release_command, d,
                   session, "health check", target.health_check_command,
                   target.health_check_timeout, step.recorder("health_check"))


def run_release_command(
    d: Deployment, session: UpdateSession, name: str, command: str | list[str], timeout: int,
    record: Callable[[Group], None] | None = None,
) -> None:
    """One of the release's commands, logged to the session's log, told what is installed.
    It dies with this process; `record` journals its process group before it starts. What
    it prints is shown without the deployment's secrets, nor those of the command itself
    (the release's own [tool.gitrelease] may give it a ``--token=``: the deployment's
    settings, read before the checkout, do not know it)."""
    from gitrelease.core.settings import command_argv
    from gitrelease.core.text import setting_secrets
    from gitrelease.deploy.command_runner import run_command

    layout = d.layout()
    run_command(
        name, command_argv(command), cwd=d.root, timeout=timeout,
        log=layout.logs_dir / f"{session.id}.log", tether=record or (lambda group: None),
        secrets=d.secrets.adding(setting_secrets([command])),
        environment={
            "GITRELEASE_SESSION_ID": session.id,
            "GITRELEASE_ROOT": str(d.root),
            "GITRELEASE_DATA_DIR": str(d.data_dir),
            "GITRELEASE_FROM_COMMIT": session.from_commit or "",
            "GITRELEASE_TO_COMMIT": session.to_commit or "",
            "GITRELEASE_FROM_VERSION": session.current_version,
            "GITRELEASE_TO_VERSION": session.target_version,
        })
