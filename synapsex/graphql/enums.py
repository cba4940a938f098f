"""Enums shared by several domains; values are the contracts' lower-case strings."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(
    description="What a member may do, from most to least: OWNER, ADMIN, MEMBER, VIEWER."
)
class Role(Enum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


@strawberry.enum(description="A tenant's plan; it sets the default limits.")
class Plan(Enum):
    FREE = "free"
    PRO = "pro"
    ENTERPRISE = "enterprise"
