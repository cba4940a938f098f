"""Configuration: settings from the environment, database URLs, logging."""

from synapsex.config.database import (
    DatabaseConfig,
    parse_database_url,
    resolve_database,
    service_slug,
    url_variable,
)
from synapsex.config.errors import ConfigError
from synapsex.config.logging import configure_logging, log_context
from synapsex.config.settings import Settings

__all__ = [
    "ConfigError",
    "DatabaseConfig",
    "Settings",
    "configure_logging",
    "log_context",
    "parse_database_url",
    "resolve_database",
    "service_slug",
    "url_variable",
]
