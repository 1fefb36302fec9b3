"""The operations on one deployment: check, install, rollback, restore, backups, status,
schedules, restarts and boot-checks. Each takes a `context.Deployment` (root, repo,
settings, layout, index), never the facade; `guard.exclusive` runs a change under the
operation lock."""
