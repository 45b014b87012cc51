"""The rules in force according to the store: the active version, or the file's rules
while the store holds none yet (a store never started in ``managed_by`` mode)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config.loader import check_rules_text, load_rules
from gateway.config.settings import Settings
from gateway.errors import ConfigError
from gateway.model import RuleSet
from gateway.store import rule_versions as version_store


async def active_ruleset(
    engine: AsyncEngine, settings: Settings, env: Mapping[str, str]
) -> RuleSet:
    """The active version's rules (the file's before there is one); raises
    ``ConfigError`` listing every problem when they do not compile here."""
    version = await version_store.active_version(engine)
    if version is None:
        return load_rules(settings.rules_path, env=env)
    ruleset, problems = check_rules_text(
        version.yaml, source=f"rules version {version.id}", env=env
    )
    if ruleset is None:
        raise ConfigError([str(problem) for problem in problems])
    return ruleset
