"""update-service: releases of the VMs' agent and runtime, and the rollouts that deliver them.

A **release** is one version of a component (``AGENT`` or ``RUNTIME``): a semantic version
(semver.org 2.0.0), where to download it and its SHA-256. Versions are unique per component and
tenant by **precedence**: build metadata does not count, so ``1.4.0+b7`` is taken once
``1.4.0`` exists.

A **rollout** moves a tenant's VMs to a release. Which VMs, and when, is decided per VM when the
VM asks for its desired version (:class:`GetDesiredVersion`):

* a VM's **bucket** is ``int.from_bytes(sha256(f"{rollout_id}:{vm_id}").digest()[:8], "big")
  % 10000`` (:func:`bucket_of`); the VM is inside the percentage when ``bucket < percentage *
  100``, so raising the percentage only ever adds VMs;
* ``labels`` (a selector: every pair must equal the VM's label) narrow the target;
* ``rings`` are ordered groups, each a label selector; a VM belongs to the first ring whose
  selector matches (none: not targeted). Only rings up to the rollout's current ring are
  targeted; the next ring is reached when every VM targeted in the current ring reports the
  release's version and is healthy;
* a VM that was given the version keeps it (it is recorded) while the rollout is paused,
  halted, or at a lower percentage; only a rollback takes it back.

At most one rollout per component and tenant is **active** (``RUNNING``, ``PAUSED`` or
``HALTED``). ``COMPLETED`` and ``ROLLED_BACK`` end it. See ``docs/rollouts.md``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import semver

from synapsex.contracts.common import PageRequest, check_choice, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "update-service"

COMPONENTS: tuple[str, ...] = ("AGENT", "RUNTIME")

RUNNING = "RUNNING"
PAUSED = "PAUSED"
HALTED = "HALTED"
COMPLETED = "COMPLETED"
ROLLED_BACK = "ROLLED_BACK"
ROLLOUT_STATUSES: tuple[str, ...] = (RUNNING, PAUSED, HALTED, COMPLETED, ROLLED_BACK)
#: statuses of the (at most one per component and tenant) rollout in progress
ACTIVE_STATUSES: tuple[str, ...] = (RUNNING, PAUSED, HALTED)

#: the domain events the service publishes (through its outbox)
RELEASE_CREATED = "release.created"
ROLLOUT_STARTED = "rollout.started"
ROLLOUT_PROGRESSED = "rollout.progressed"
ROLLOUT_PAUSED = "rollout.paused"
ROLLOUT_RESUMED = "rollout.resumed"
ROLLOUT_HALTED = "rollout.halted"
ROLLOUT_ROLLED_BACK = "rollout.rolled_back"
ROLLOUT_COMPLETED = "rollout.completed"

#: buckets a VM may fall into: a percentage is ``percentage * 100`` of them
BUCKETS = 10_000
MAX_RINGS = 10
MAX_SELECTOR_LABELS = 20
MAX_LABEL_KEY_LENGTH = 63
MAX_LABEL_VALUE_LENGTH = 200
MAX_VERSION_LENGTH = 100
MAX_NOTES_LENGTH = 10_000
MAX_URL_LENGTH = 2_000

_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_LABEL_KEY_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?")
_RING_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


# ---------------------------------------------------------------------------- functions


def bucket_of(rollout_id: str, vm_id: str) -> int:
    """The VM's bucket in a rollout, ``0 <= bucket < BUCKETS``: the first 8 bytes of
    ``SHA-256("<rollout_id>:<vm_id>")`` as a big-endian unsigned integer, modulo
    :data:`BUCKETS`. Deterministic, and independent between rollouts (a VM early in one
    rollout is not early in every rollout)."""
    digest = hashlib.sha256(f"{rollout_id}:{vm_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_percentage(bucket: int, percentage: int) -> bool:
    """Whether a VM of ``bucket`` is inside ``percentage`` (0 to 100): monotonic in the
    percentage, so raising it only adds VMs."""
    return bucket < percentage * (BUCKETS // 100)


def parse_version(value: str) -> semver.Version:
    """A semantic version (semver.org 2.0.0); ``ValueError`` when it is not one."""
    return semver.Version.parse(value)


def version_key(value: str) -> str:
    """What makes two versions the same release: the version without build metadata."""
    return str(parse_version(value).replace(build=None))


def same_version(a: str | None, b: str | None) -> bool:
    """Whether two reported versions have the same precedence (build metadata aside); text
    that is not a semantic version is compared as it is."""
    if a is None or b is None:
        return False
    try:
        return parse_version(a).compare(b) == 0
    except ValueError:
        return a == b


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether every pair of ``selector`` is among ``labels`` (an empty selector matches)."""
    return all(labels.get(key) == value for key, value in selector.items())


def check_version(value: str, field: str = "version") -> None:
    check_text(value, field, max_length=MAX_VERSION_LENGTH)
    try:
        parse_version(value)
    except ValueError:
        raise InvalidInput(
            field, "must be a semantic version such as 1.4.0 or 2.0.0-rc.1 (semver.org)"
        ) from None


def check_percentage(value: int, field: str = "percentage") -> None:
    if not 0 <= value <= 100:
        raise InvalidInput(field, "must be between 0 and 100")


def check_selector(selector: dict[str, str], field: str) -> None:
    """A label selector: at most 20 pairs; keys like ``env`` or ``example.com/ring``."""
    if len(selector) > MAX_SELECTOR_LABELS:
        raise InvalidInput(field, f"must have at most {MAX_SELECTOR_LABELS} labels")
    for key, value in selector.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput(field, "keys and values must be strings")
        if len(key) > MAX_LABEL_KEY_LENGTH or not _LABEL_KEY_RE.fullmatch(key):
            raise InvalidInput(
                f"{field}.{key}",
                f"a label key is 1 to {MAX_LABEL_KEY_LENGTH} letters, digits or . _ / - "
                "starting and ending with a letter or digit",
            )
        check_text(value, f"{field}.{key}", max_length=MAX_LABEL_VALUE_LENGTH)


# ---------------------------------------------------------------------------- replies


class RolloutRing(Reply):
    """One ring of a rollout: a name and the label selector of its VMs."""

    name: str
    labels: dict[str, str]


class ReleaseView(Reply):
    id: str
    tenant_id: str
    #: ``AGENT`` or ``RUNTIME``
    component: str
    version: str
    notes: str
    #: where VMs download it
    url: str
    #: lower-case hex SHA-256 of the download, for the VM to verify
    sha256: str
    created_at: datetime


class RolloutView(Reply):
    id: str
    tenant_id: str
    release_id: str
    component: str
    #: the release's version
    version: str
    #: the release VMs go back to on rollback (``None``: there is none; they keep what they run)
    previous_release_id: str | None
    previous_version: str | None
    #: one of :data:`ROLLOUT_STATUSES`
    status: str
    percentage: int
    #: selector narrowing the target (empty: every VM)
    labels: dict[str, str]
    rings: tuple[RolloutRing, ...]
    #: index in ``rings`` of the last ring reached (0 without rings)
    current_ring: int
    #: VMs in the target now (given the version, or eligible while running)
    targeted: int
    #: targeted VMs reporting the release's version
    updated: int
    #: VMs given the version that report FAILED or are OFFLINE
    failed: int
    #: why the health gate halted it (``None`` unless it did)
    halted_reason: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class DesiredVersion(Reply):
    """What a VM should run of one component; ``version`` ``None``: keep what it runs."""

    version: str | None
    release_id: str | None
    rollout_id: str | None
    #: one sentence explaining the decision
    reason: str


# ---------------------------------------------------------------------------- messages


class CreateRelease(Message, service=SERVICE):
    """Replies :class:`ReleaseView`; ``CONFLICT`` on ``version`` when the component already
    has a release of that precedence."""

    tenant_id: str
    component: str
    version: str
    url: str
    sha256: str
    notes: str = ""

    def validate(self) -> None:
        check_choice(self.component, COMPONENTS, "component")
        check_version(self.version)
        check_text(self.url, "url", max_length=MAX_URL_LENGTH)
        if not self.url.lower().startswith(("https://", "http://")):
            raise InvalidInput("url", "must be an http:// or https:// URL")
        if not _SHA256_RE.fullmatch(self.sha256):
            raise InvalidInput("sha256", "must be 64 hexadecimal digits")
        if len(self.notes) > MAX_NOTES_LENGTH:
            raise InvalidInput("notes", f"must be at most {MAX_NOTES_LENGTH} characters")


class GetRelease(Message, service=SERVICE):
    """Replies :class:`ReleaseView`; ``NOT_FOUND`` for another tenant's or an unknown id."""

    tenant_id: str
    id: str


class ListReleases(PageRequest, service=SERVICE):
    """Replies ``Page[ReleaseView]``, oldest first, narrowed by ``component``."""

    tenant_id: str
    component: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.component is not None:
            check_choice(self.component, COMPONENTS, "component")


class StartRollout(Message, service=SERVICE):
    """Start rolling out a release. Replies :class:`RolloutView` (``RUNNING``).
    ``NOT_FOUND`` on ``releaseId``; ``CONFLICT`` on ``releaseId`` while another rollout of the
    component is active."""

    tenant_id: str
    release_id: str
    percentage: int
    labels: dict[str, str]
    rings: tuple[RolloutRing, ...] = ()

    def validate(self) -> None:
        check_text(self.release_id, "releaseId", max_length=40)
        check_percentage(self.percentage)
        check_selector(self.labels, "labels")
        if len(self.rings) > MAX_RINGS:
            raise InvalidInput("rings", f"must have at most {MAX_RINGS} rings")
        names: set[str] = set()
        for i, ring in enumerate(self.rings):
            if not isinstance(ring, RolloutRing):
                raise InvalidInput(f"rings.{i}", "must be a ring")
            if not _RING_NAME_RE.fullmatch(ring.name):
                raise InvalidInput(
                    f"rings.{i}.name",
                    "must be 1 to 63 letters, digits or . _ - starting with a letter or digit",
                )
            if ring.name in names:
                raise InvalidInput(f"rings.{i}.name", f"ring {ring.name!r} is named twice")
            names.add(ring.name)
            check_selector(ring.labels, f"rings.{i}.labels")


class SetRolloutPercentage(Message, service=SERVICE):
    """Replies :class:`RolloutView`. Lowering it gives no new VM the version; VMs already
    given it keep it. ``CONFLICT`` when the rollout has ended."""

    tenant_id: str
    id: str
    percentage: int

    def validate(self) -> None:
        check_percentage(self.percentage)


class PauseRollout(Message, service=SERVICE):
    """``RUNNING`` → ``PAUSED`` (no new VM is targeted). ``CONFLICT`` from another status."""

    tenant_id: str
    id: str


class ResumeRollout(Message, service=SERVICE):
    """``PAUSED`` or ``HALTED`` → ``RUNNING``. ``CONFLICT`` from another status."""

    tenant_id: str
    id: str


class RollbackRollout(Message, service=SERVICE):
    """Any status but ``ROLLED_BACK`` → ``ROLLED_BACK``: every VM given the release is sent
    back to the previous release. Only the component's latest rollout may be rolled back
    (``CONFLICT`` otherwise)."""

    tenant_id: str
    id: str


class GetRollout(Message, service=SERVICE):
    """Replies :class:`RolloutView`; ``NOT_FOUND`` for another tenant's or an unknown id."""

    tenant_id: str
    id: str


class ListRollouts(PageRequest, service=SERVICE):
    """Replies ``Page[RolloutView]``, oldest first, narrowed by status and component."""

    tenant_id: str
    status: str | None = None
    component: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.status is not None:
            check_choice(self.status, ROLLOUT_STATUSES, "status")
        if self.component is not None:
            check_choice(self.component, COMPONENTS, "component")


class NoteVmHeartbeat(Message, service=SERVICE):
    """Told by vm-registry-service after each heartbeat it stored: the tenant's active
    rollouts are evaluated again soon (progress, health gate, rings, completion), at most
    about once a second per tenant. No reply."""

    tenant_id: str
    vm_id: str


class GetDesiredVersion(Message, service=SERVICE):
    """What the VM should run of ``component``. Replies :class:`DesiredVersion`; ``NOT_FOUND``
    on ``vmId`` for another tenant's or an unknown VM.

    When the VM is targeted by a running rollout it is given the release, and that is
    recorded (it keeps it). With ``preview`` (a user asking about a VM) nothing is recorded:
    the reply says what the VM would be told."""

    tenant_id: str
    vm_id: str
    component: str
    preview: bool = False

    def validate(self) -> None:
        check_text(self.vm_id, "vmId", max_length=60)
        check_choice(self.component, COMPONENTS, "component")


__all__ = [
    "ACTIVE_STATUSES",
    "BUCKETS",
    "COMPLETED",
    "COMPONENTS",
    "HALTED",
    "PAUSED",
    "RELEASE_CREATED",
    "ROLLED_BACK",
    "ROLLOUT_COMPLETED",
    "ROLLOUT_HALTED",
    "ROLLOUT_PAUSED",
    "ROLLOUT_PROGRESSED",
    "ROLLOUT_RESUMED",
    "ROLLOUT_ROLLED_BACK",
    "ROLLOUT_STARTED",
    "ROLLOUT_STATUSES",
    "RUNNING",
    "SERVICE",
    "CreateRelease",
    "DesiredVersion",
    "GetDesiredVersion",
    "GetRelease",
    "GetRollout",
    "ListReleases",
    "ListRollouts",
    "NoteVmHeartbeat",
    "PauseRollout",
    "ReleaseView",
    "ResumeRollout",
    "RollbackRollout",
    "RolloutRing",
    "RolloutView",
    "SetRolloutPercentage",
    "StartRollout",
    "bucket_of",
    "in_percentage",
    "parse_version",
    "same_version",
    "selector_matches",
    "version_key",
]
