"""The settings as operators see and change them: every value with the layer it came from,
and a runtime change written to data/settings.toml, checked first and audited."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import InvalidInput
from gitrelease.deploy.context import Deployment, in_thread

if TYPE_CHECKING:
    from gitrelease.core.settings_edit import SettingChange

__all__ = ["change_setting", "settings_view"]


def settings_view(d: Deployment, category: str | None = None) -> list[dict[str, Any]]:
    """Every setting (of one category) with its value and the layer it comes from."""
    from gitrelease.core.settings import CATEGORIES, schema

    if category is not None and category not in CATEGORIES:
        raise InvalidInput("setting_category", category, CATEGORIES)
    return [{"category": spec.category, "name": name, "value": d.settings.get(name),
             "default": spec.default, "source": d.loaded.sources[name],
             "allowed": spec.allowed(), "description": spec.description}
            for name, spec in schema().items() if category in (None, spec.category)]


async def change_setting(
    d: Deployment, category: str, name: str, value: str | None, *, actor: str = "system"
) -> SettingChange:
    """Set a runtime setting from text, or reset it with `value` None; audited."""
    from gitrelease.core.settings_edit import change_setting as write_change
    from gitrelease.core.settings_edit import parse_value, spec_for

    if value is not None:
        if not isinstance(value, str):
            raise InvalidInput("setting_value", value, "text")
        parse_value(spec_for(category, name), value)  # bad input changes nothing
    else:
        spec_for(category, name)
    # The index in force before the change records it: a change of index_url is audited
    # where the deployment's history has been, and an unreachable new server fails nothing.
    store = await d.index()
    change = await in_thread(write_change, d.root, d.data_dir, category, name, value)
    await in_thread(d.reload_settings)
    await store.audit(actor, "settings_reset" if value is None else "settings_set",
                      f"{category}.{name}", "completed",
                      {"previous": _shown(name, change.previous),
                       "new": _shown(name, change.new)})
    return change


def _shown(name: str, value: Any) -> Any:
    """A setting's value as it may be written to the audit log (never a command's secrets)."""
    from gitrelease.core.settings import is_secret

    return "(set)" if is_secret(name) and value else value
