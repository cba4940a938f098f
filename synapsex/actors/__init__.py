"""Services: one package per service, each with ``actor.py``, ``models.py`` and ``migrations/``.

Nothing here is imported by the runtime; services are found through the ``synapsex.services``
entry points in ``pyproject.toml``.
"""
