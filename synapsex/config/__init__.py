"""Configuration: settings from the environment, database URLs, logging, the master key."""

from synapsex.config.database import (
    DatabaseConfig,
    parse_database_url,
    resolve_database,
    service_slug,
    url_variable,
)
from synapsex.config.errors import ConfigError
from synapsex.config.logging import configure_logging, log_context
from synapsex.config.master_key import MasterKey, SealError, load_master_key
from synapsex.config.settings import Settings

__all__ = [
    "ConfigError",
    "DatabaseConfig",
    "MasterKey",
    "SealError",
    "Settings",
    "configure_logging",
    "load_master_key",
    "log_context",
    "parse_database_url",
    "resolve_database",
    "service_slug",
    "url_variable",
]
