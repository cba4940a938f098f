"""SynapseX: the backend of a platform for AI agents.

An asyncio actor runtime (``synapsex.runtime``) runs one actor per service, each owning its
tables; contracts (``synapsex.contracts``) are the only code services share.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synapsex")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
