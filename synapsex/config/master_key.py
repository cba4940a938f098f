"""Encryption at rest: one master key, AES-256-GCM, sealed values as self-describing text tokens.

**What it protects.** Values that must be stored but must never sit in a database in plaintext:
webhook signing secrets, and the secrets-service's data keys. A service seals a value
before it writes the row and opens it only when it needs the value (to sign a delivery, to
reveal a secret to an allowed caller). A database dump, a backup or a replica holds tokens,
never the values. Not hidden: the context (it names the row), and the value's length.

**Token format.** ``v1.<key id>.<base64url(nonce + ciphertext + tag)>``, ASCII, no padding::

    v1.3f9a12bc.q1y8...Zw

* ``v1``: the format version: AES-256-GCM, a random 12-byte nonce, a 16-byte tag.
* ``<key id>``: the first 8 hex digits of SHA-256 of the master key, so a value sealed with
  another key is named as such instead of failing as "tampered". It identifies a key without
  revealing it.
* The associated data is ``v1.<key id>`` and the caller's ``context`` (for instance
  ``"webhook-secret:<subscription id>"``): a token copied to another row, relabelled with another
  key id or altered in any byte does not open.

Random 96-bit nonces stay safe for about 2**32 seals under one key (NIST SP 800-38D), far more
than a platform's secrets.

**Setting the key in production.** Set ``SYNAPSEX_MASTER_KEY`` to standard or URL-safe base64 of
exactly 32 random bytes, the same value on every ``synapsex serve`` process and machine that
shares a database: a value sealed by one process must open in the others. Generate one with::

    python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"

and keep it in the platform's secret store, never in the repository. Losing the key loses every
sealed value; changing it without keeping the old one in the ring makes the values sealed before
unreadable (the error names the key ids): rotate as below. A set but empty variable is refused
rather than read as unset: a template that rendered nothing must not silently switch a
deployment to a fresh local key.

**The key file fallback** (``master.key`` in ``SYNAPSEX_DATA_DIR``) suits one machine: the
embedded SQLite default, development, tests. When the variable is unset, the file is read, or
created with 32 random bytes (base64 text) and mode 0600. Creation is atomic and exclusive: the
key is written to a temporary file opened with ``O_CREAT | O_EXCL``, flushed to disk, then
hard-linked to ``master.key``; the link fails if the name already exists, so processes starting
together end up with one key (the losers read the winner's complete file) and a crash never
leaves a half-written key behind. A filesystem without hard links cannot hold the key file: set
the variable instead.

**Permissions: refused, not warned about.** A key file that grants group or others any access
(``mode & 0o077``) stops the process with a :class:`~synapsex.config.ConfigError`, as OpenSSH
refuses a private key others can read. Readable by others means the key is already disclosed,
and a warning scrolls by while new secrets keep being sealed with it; writable by others means
someone else can swap in a key of their choosing. The owner's bits are not judged (``0400`` and
``0700`` pass). The fix is one ``chmod 600``, which the message spells out.

**A key ring, for rotation.** A :class:`MasterKey` seals under its current key and opens tokens
sealed under any key of its ring (the key id in the token picks the key). With the variable, the
older keys are ``SYNAPSEX_MASTER_KEY_PREVIOUS`` (comma-separated, same format). The key file holds
one key per line, the current one first; a file of one line (every file written before rotation
existed) is a ring of one. ``synapsex rotate-master-key`` (:func:`rotate_key_file`) writes a new
key at the head of the file, the services re-wrap what they sealed, and
:func:`retire_previous_keys` drops the older lines once nothing needs them. Both rewrite the file
the careful way: a new 0600 file (``O_CREAT | O_EXCL``), flushed, renamed over the old one
(readers see the old ring or the new one, never half of one), the folder synced; an exclusive
``flock`` on ``master.key.lock`` keeps two rotations from losing each other's key. A ring read
from the file follows it: the next seal after the file changed, or the next open of a token under
a key id the ring does not know, reads it again (one ``stat`` per seal), so a running server seals
under the new key and opens what the rotation re-wrapped without a restart.

One module, longer than most, because the token format, the key ring and the key file change
together; its sections are the error, the key ring (sealing and opening), loading, and rotation
of the key file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from synapsex.config.errors import ConfigError
from synapsex.config.settings import Settings

#: the environment variable holding the master key
MASTER_KEY_VARIABLE = "SYNAPSEX_MASTER_KEY"
#: the older keys, still opening values sealed before a rotation (comma-separated)
PREVIOUS_KEYS_VARIABLE = "SYNAPSEX_MASTER_KEY_PREVIOUS"
#: the key file's name inside ``SYNAPSEX_DATA_DIR``
MASTER_KEY_FILE = "master.key"
#: keys one ring may hold (the current one and its predecessors not yet retired)
MAX_RING_KEYS = 16

_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_VERSION = "v1"
_GENERATE = 'python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"'
_MAX_FILE_BYTES = 4096

_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_VERSION_TEXT = re.compile(r"v[0-9]{1,4}")
_BASE64URL_BODY = re.compile(r"[A-Za-z0-9_-]+")

_log = structlog.get_logger(__name__)

SealReason = Literal["malformed", "unsupported-version", "other-key", "not-authentic", "not-text"]


class SealError(Exception):
    """A token cannot be opened; ``reason`` says why.

    * ``"malformed"``: not a ``v1.<key id>.<data>`` token at all;
    * ``"unsupported-version"``: a format version this build does not read;
    * ``"other-key"``: sealed with another master key (the message names both key ids);
    * ``"not-authentic"``: a wrong context or an altered token; AES-GCM cannot tell the two apart,
      by design;
    * ``"not-text"``: :meth:`MasterKey.open_text` of a value that is not UTF-8.

    The message never holds the plaintext, key material or the token.
    """

    def __init__(self, problem: str, *, reason: SealReason) -> None:
        super().__init__(problem)
        self.reason = reason


class MasterKey:
    """The master key ring: seals values into tokens under the current key, opens tokens
    sealed under it or under any older key of the ring.

    The keys live only inside AES-GCM objects: ``repr`` and ``str`` show key ids and where the
    keys came from, and the object refuses to be pickled. One instance holds no per-call state
    and may be shared by every actor. A ring loaded from the key file follows the file: when
    the file changed (a rotation by ``synapsex rotate-master-key``), the next seal, or the next
    open of a token under an unknown key, reads it again, so a running process seals under the
    new key and opens what other processes sealed under it. No method waits (a reload is one
    ``stat`` and, when the file changed, one small read).
    """

    __slots__ = ("_aead", "_file", "_header", "_key_id", "_older", "_source")

    def __init__(
        self, key: bytes, *, source: str = "memory", previous: Sequence[bytes] = ()
    ) -> None:
        """Wrap 32 key bytes (the current key, which seals) and ``previous`` keys (32 bytes each,
        which still open); ``source`` says where they came from (shown in ``repr``)."""
        self._source = source
        self._file: _KeyFileWatch | None = None
        self._install(key, previous)

    def _install(self, key: bytes, previous: Sequence[bytes]) -> None:
        for candidate in (key, *previous):
            if len(candidate) != _KEY_BYTES:
                raise ValueError(
                    f"a master key is exactly {_KEY_BYTES} bytes, not {len(candidate)}"
                )
        key_id = _key_id(key)
        older: dict[str, AESGCM] = {}
        for old in previous:
            old_id = _key_id(old)
            if old_id != key_id and old_id not in older:
                older[old_id] = AESGCM(bytes(old))
        # assigned last, together: a failed reload leaves the ring as it was
        self._aead = AESGCM(bytes(key))
        self._key_id = key_id
        self._header = f"{_VERSION}.{key_id}"
        self._older = older

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh random key for tests and tools (a deployment uses :func:`load_master_key`)."""
        return cls(os.urandom(_KEY_BYTES), source="generated")

    @property
    def key_id(self) -> str:
        """The current key's id (the first 8 hex digits of SHA-256 of the key): names the key
        without revealing it. New tokens are sealed under it."""
        return self._key_id

    @property
    def previous_key_ids(self) -> tuple[str, ...]:
        """The ids of the older keys of the ring: they open tokens, never seal."""
        return tuple(self._older)

    @property
    def source(self) -> str:
        """``SYNAPSEX_MASTER_KEY``, the key file's path, ``"generated"`` or ``"memory"``."""
        return self._source

    def __repr__(self) -> str:
        previous = f" previous={','.join(self._older)}" if self._older else ""
        return f"<MasterKey key_id={self._key_id}{previous} source={self._source}>"

    def __reduce__(self) -> object:
        raise TypeError("a MasterKey cannot be pickled: the key must not leave the process")

    # -- sealing -----------------------------------------------------------------------------

    def seal(self, plaintext: bytes, *, context: str) -> str:
        """Encrypt ``plaintext`` for ``context``; returns a ``v1.<key id>.<data>`` token.

        Each call draws a fresh nonce, so sealing one value twice gives two different tokens.
        Raises ``TypeError`` for a ``str`` (use :meth:`seal_text`) and ``ValueError`` for an empty
        context.
        """
        if not isinstance(plaintext, bytes | bytearray | memoryview):
            raise TypeError("seal() takes bytes; use seal_text() for str")
        self._refresh()
        nonce = os.urandom(_NONCE_BYTES)
        associated = self._associated_data(self._header, context)
        sealed = self._aead.encrypt(nonce, bytes(plaintext), associated)
        return f"{self._header}.{_b64url(nonce + sealed)}"

    def open(self, token: str, *, context: str) -> bytes:
        """The plaintext sealed in ``token`` for ``context``, under any key of the ring.

        Raises :class:`SealError` for a malformed token, another version, a key not in the ring,
        a wrong context or any alteration; ``ValueError`` for an empty context.
        """
        self._associated_data(self._header, context)  # checks the context first
        key_id, nonce_and_sealed = self._parse(token)
        aead = self._aead_for(key_id)
        try:
            return aead.decrypt(
                nonce_and_sealed[:_NONCE_BYTES],
                nonce_and_sealed[_NONCE_BYTES:],
                self._associated_data(f"{_VERSION}.{key_id}", context),
            )
        except InvalidTag:
            raise SealError(
                f"the token does not open for context {context!r}: "
                "it was sealed for another context or altered",
                reason="not-authentic",
            ) from None

    def reseal(self, token: str, *, context: str) -> str | None:
        """``token`` sealed again under the current key, or ``None`` when it already is.

        What a master key rotation does to each stored token: the plaintext never leaves this
        call. Raises :class:`SealError` as :meth:`open` does.
        """
        self._refresh()
        if self.key_id_of(token) == self._key_id:
            self.open(token, context=context)  # still proves the token opens here
            return None
        return self.seal(self.open(token, context=context), context=context)

    @staticmethod
    def key_id_of(token: str) -> str:
        """The id of the key ``token`` was sealed under; :class:`SealError` if malformed."""
        return MasterKey._parse(token)[0]

    def seal_text(self, text: str, *, context: str) -> str:
        """:meth:`seal` for a ``str`` (UTF-8)."""
        if not isinstance(text, str):
            raise TypeError("seal_text() takes str; use seal() for bytes")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            # The codec's error keeps the whole text in ``exc.object``: do not chain it.
            raise ValueError(f"the text cannot be UTF-8 encoded (at index {exc.start})") from None
        return self.seal(data, context=context)

    def open_text(self, token: str, *, context: str) -> str:
        """:meth:`open` for a value sealed with :meth:`seal_text`; ``SealError`` if not UTF-8."""
        data = self.open(token, context=context)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            # The codec's error quotes the bytes: do not chain it.
            raise SealError(
                "the sealed value is not UTF-8 text; open it with open()", reason="not-text"
            ) from None

    @staticmethod
    def _associated_data(header: str, context: str) -> bytes:
        if not isinstance(context, str):
            raise TypeError("context is a str naming where the value lives")
        if not context:
            raise ValueError("context must name where the value lives, e.g. 'webhook-secret:<id>'")
        return f"{header}\x00{context}".encode("utf-8", "surrogatepass")

    @staticmethod
    def _parse(token: str) -> tuple[str, bytes]:
        """``token`` → its key id and nonce + ciphertext + tag, after checking the format."""
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3:
            raise SealError("not a sealed token (v1.<key id>.<data>)", reason="malformed")
        version, key_id, body = parts
        if version != _VERSION:
            if _VERSION_TEXT.fullmatch(version):
                raise SealError(
                    f"token version {version} is not supported (this build reads {_VERSION})",
                    reason="unsupported-version",
                )
            raise SealError("not a sealed token (no version)", reason="malformed")
        if not _KEY_ID.fullmatch(key_id):
            raise SealError("not a sealed token (bad key id)", reason="malformed")
        data = _b64url_decode(body) if _BASE64URL_BODY.fullmatch(body) else None
        # Only the canonical encoding is accepted, so the token text itself cannot be varied.
        if data is None or _b64url(data) != body:
            raise SealError("not a sealed token (data is not base64url)", reason="malformed")
        if len(data) < _NONCE_BYTES + _TAG_BYTES:
            raise SealError("not a sealed token (too short)", reason="malformed")
        return key_id, data

    def _aead_for(self, key_id: str) -> AESGCM:
        """The key of the ring named ``key_id`` (reading a changed key file once more)."""
        for attempt in range(2):
            if key_id == self._key_id:
                return self._aead
            older = self._older.get(key_id)
            if older is not None:
                return older
            if attempt == 0 and not self._refresh():
                break
        ring = ", ".join((self._key_id, *self._older))
        where = f"not in the ring ({ring})" if self._older else f"not with this one ({ring})"
        raise SealError(f"sealed with master key {key_id}, {where}", reason="other-key")

    def _refresh(self) -> bool:
        """Read the key file again if it changed since it was read; ``True`` if the ring did."""
        watch = self._file
        signature = watch.signature() if watch is not None else None
        if watch is None or signature == watch.seen:
            return False
        # noted before the read: a change racing the read is seen (and read) next time
        watch.seen = signature
        try:
            keys = _read_key_file(watch.path)
        except (FileNotFoundError, ConfigError) as exc:
            _log.error("master key file unreadable; the keys in memory stay", problem=str(exc))
            return False
        before = (self._key_id, *self._older)
        self._install(keys[0], keys[1:])
        after = (self._key_id, *self._older)
        if after == before:
            return False
        _log.info(
            "master key ring reloaded",
            path=str(watch.path),
            key_id=self._key_id,
            previous_key_ids=list(self._older),
        )
        return True


class _KeyFileWatch:
    """Where a ring was read from, and the file's identity when it was read."""

    __slots__ = ("path", "seen")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = self.signature()

    def signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)


# -- loading -----------------------------------------------------------------------------------


def load_master_key(settings: Settings) -> MasterKey:
    """The master key ring from ``SYNAPSEX_MASTER_KEY`` (and ``SYNAPSEX_MASTER_KEY_PREVIOUS``),
    else from (or into) the key file.

    Raises :class:`~synapsex.config.ConfigError` naming the variable for a value that is not
    base64 of 32 bytes (the message never repeats the value), for previous keys without a
    current one, and for a key file that is malformed, open to group or others, or cannot be
    read or created (the message names the file). Blocks briefly on file I/O; call it once at
    start.
    """
    raw = settings.environ.get(MASTER_KEY_VARIABLE)
    previous_raw = settings.environ.get(PREVIOUS_KEYS_VARIABLE)
    if raw is not None:
        key = _environment_key(raw)
        previous = _previous_keys(previous_raw) if previous_raw is not None else []
        return MasterKey(key, source=MASTER_KEY_VARIABLE, previous=previous)
    _refuse_previous_alone(previous_raw)
    path = key_file_path(settings)
    try:
        keys = _read_key_file(path)
    except FileNotFoundError:
        keys = [_create_key_file(path)]
    ring = MasterKey(keys[0], source=str(path), previous=keys[1:])
    ring._file = _KeyFileWatch(path)
    return ring


def _refuse_previous_alone(previous_raw: str | None) -> None:
    if previous_raw is not None and previous_raw.strip():
        raise ConfigError(
            PREVIOUS_KEYS_VARIABLE,
            f"is set but {MASTER_KEY_VARIABLE} is not: previous keys only open values beside a "
            f"current key given by {MASTER_KEY_VARIABLE}",
        )


def key_file_path(settings: Settings) -> Path:
    """Where the key file lives: ``master.key`` in ``SYNAPSEX_DATA_DIR``."""
    return Path(settings.data_dir) / MASTER_KEY_FILE


def _environment_key(raw: str) -> bytes:
    try:
        return _decode_key(raw)
    except ValueError as exc:
        hint = "unset it to use the key file in SYNAPSEX_DATA_DIR, or " if not raw.strip() else ""
        problem = f"{exc}; {hint}generate a key with: {_GENERATE}"
        raise ConfigError(MASTER_KEY_VARIABLE, problem) from None


def _previous_keys(raw: str) -> list[bytes]:
    """The comma-separated keys of ``SYNAPSEX_MASTER_KEY_PREVIOUS`` (empty entries skipped)."""
    keys = []
    for number, item in enumerate(raw.split(","), start=1):
        if not item.strip():
            continue
        try:
            keys.append(_decode_key(item))
        except ValueError as exc:
            raise ConfigError(PREVIOUS_KEYS_VARIABLE, f"key {number} {exc}") from None
    if len(keys) > MAX_RING_KEYS - 1:
        raise ConfigError(PREVIOUS_KEYS_VARIABLE, f"holds more than {MAX_RING_KEYS - 1} keys")
    return keys


# -- rotation (the key file) ------------------------------------------------------------------


def rotate_key_file(settings: Settings) -> MasterKey:
    """Put a new random key at the head of the key file's ring, keeping the older keys (they
    still open what they sealed); returns the new ring.

    The file is replaced atomically (a 0600 temporary file, flushed, renamed over it), under an
    exclusive lock so two rotations cannot lose each other's key. Raises ConfigError when the
    file is missing (nothing to rotate), malformed, open to others, or cannot be written, and
    when ``SYNAPSEX_MASTER_KEY`` is set (the operator rotates the variable instead).
    """
    path = _rotatable_file(settings)
    _read_existing(path)  # a missing file is named as such, not as a lock failure
    with _ring_lock(path):
        keys = _read_existing(path)
        if len(keys) >= MAX_RING_KEYS:
            raise _file_error(
                path,
                f"already holds {MAX_RING_KEYS} keys; retire the previous ones first "
                "(synapsex rotate-master-key --retire)",
            )
        new = os.urandom(_KEY_BYTES)
        _replace_key_file(path, [new, *keys])
    _log.info("master key rotated", path=str(path), key_id=_key_id(new))
    return load_master_key(settings)


def retire_previous_keys(settings: Settings, *, keep: str) -> tuple[str, ...]:
    """Drop every key but the current one from the key file; returns the ids dropped.

    ``keep`` is the current key id the caller re-wrapped everything to: when the file's current
    key is another (a rotation meanwhile), nothing is dropped and ConfigError says so.
    """
    path = _rotatable_file(settings)
    _read_existing(path)
    with _ring_lock(path):
        keys = _read_existing(path)
        if _key_id(keys[0]) != keep:
            raise _file_error(
                path,
                f"changed meanwhile: its current key is {_key_id(keys[0])}, not {keep}; "
                "run the rotation again",
            )
        dropped = tuple(_key_id(k) for k in keys[1:])
        if dropped:
            _replace_key_file(path, keys[:1])
    if dropped:
        _log.info("previous master keys retired", path=str(path), key_ids=list(dropped))
    return dropped


def _rotatable_file(settings: Settings) -> Path:
    if settings.environ.get(MASTER_KEY_VARIABLE) is not None:
        raise ConfigError(
            MASTER_KEY_VARIABLE,
            "is set, so the key file is not used: set the new key in SYNAPSEX_MASTER_KEY and "
            f"the old one in {PREVIOUS_KEYS_VARIABLE}, then re-wrap",
        )
    _refuse_previous_alone(settings.environ.get(PREVIOUS_KEYS_VARIABLE))
    return key_file_path(settings)


def _read_existing(path: Path) -> list[bytes]:
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        raise _file_error(
            path, "does not exist: there is no key to rotate yet (it is made at the first start)"
        ) from None


@contextlib.contextmanager
def _ring_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``<key file>.lock`` (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    lock = path.with_name(f"{path.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise _file_error(
            path, f"cannot be locked ({exc.strerror or type(exc).__name__})"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _replace_key_file(path: Path, keys: list[bytes]) -> None:
    """Write ``keys`` (current first) to a new 0600 file and rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "xb", opener=_owner_only) as file:  # O_CREAT | O_EXCL, mode 0600
            file.write(b"".join(base64.b64encode(k) + b"\n" for k in keys))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # atomic: readers see the old ring or the new one
        _fsync_folder(path.parent)
    except OSError as exc:
        problem = f"cannot be rewritten ({exc.strerror or type(exc).__name__})"
        raise _file_error(path, problem) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def _decode_key(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional, of exactly 32 bytes.

    Raises ``ValueError`` naming the problem; the message never holds the text.
    """
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    if _HEX_KEY.fullmatch(value):
        raise ValueError("looks like 64 hex digits; give the 32 bytes as base64 instead")
    key = None
    if _BASE64_TEXT.fullmatch(value):
        unpadded = value.rstrip("=").translate(_URLSAFE_TO_STANDARD)
        with contextlib.suppress(binascii.Error):
            key = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    if key is None:
        raise ValueError("is not base64 (standard or URL-safe)")
    if len(key) != _KEY_BYTES:
        raise ValueError(f"decodes to {len(key)} bytes; a master key is exactly {_KEY_BYTES}")
    return key


def _read_key_file(path: Path) -> list[bytes]:
    """The keys in ``path``, current first; ``FileNotFoundError`` if there is none, ConfigError
    on a problem. One key per line (blank lines are skipped): a file written before rotation
    existed holds one."""
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise _file_error(path, "is not a regular file")
            if os.name == "posix" and mode & 0o077:
                raise _file_error(
                    path,
                    f"is open to group or others (mode {stat.S_IMODE(mode):04o}); "
                    f"run: chmod 600 {path}",
                )
            data = file.read(_MAX_FILE_BYTES + 1)
    except (FileNotFoundError, ConfigError):
        raise
    except OSError as exc:
        raise _file_error(path, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:  # its message quotes a byte of the file: not repeated
        raise _file_error(path, "is malformed: is not base64 text") from None
    lines = [line for line in text.splitlines() if line.strip()] or [""]
    if len(lines) > MAX_RING_KEYS:
        raise _file_error(path, f"is malformed: holds more than {MAX_RING_KEYS} keys")
    keys = []
    for number, line in enumerate(lines, start=1):
        try:
            keys.append(_decode_key(line))
        except ValueError as exc:
            where = f"line {number} " if len(lines) > 1 else ""
            raise _file_error(path, f"is malformed: {where}{exc}") from None
    return keys


def _create_key_file(path: Path) -> bytes:
    """Write a new random key to ``path`` unless another process got there first; the file's key."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    key = os.urandom(_KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "xb", opener=_owner_only) as file:  # O_CREAT | O_EXCL, mode 0600
            file.write(base64.b64encode(key) + b"\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # atomic, and fails if the name exists: one winner
        except FileExistsError:
            pass  # another process won; its file was complete before it got its name
        else:
            _fsync_folder(path.parent)
            _log.info(
                "master key file created; back it up, or set SYNAPSEX_MASTER_KEY",
                path=str(path),
                key_id=_key_id(key),
            )
    except OSError as exc:
        problem = f"cannot be created ({exc.strerror or type(exc).__name__})"
        raise _file_error(path, f"{problem}; set SYNAPSEX_MASTER_KEY instead") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    try:
        return _read_key_file(path)[0]
    except FileNotFoundError:
        raise _file_error(path, "disappeared while it was being created") from None


def _owner_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _fsync_folder(folder: Path) -> None:
    """Make the new name durable (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _file_error(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        MASTER_KEY_VARIABLE,
        f"not set, and the key file {path} ({MASTER_KEY_FILE} in SYNAPSEX_DATA_DIR) {problem}",
    )


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return None


SealError.__module__ = "synapsex.config"
MasterKey.__module__ = "synapsex.config"
