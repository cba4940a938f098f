"""Encryption at rest: one master key, AES-256-GCM, sealed values as self-describing text tokens.

**What it protects.** Values that must be stored but must never sit in a database in plaintext:
webhook signing secrets today, the secrets-service's secrets later. A service seals a value
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
sealed value; changing it makes the values sealed before unreadable (the error names both key
ids). A set but empty variable is refused rather than read as unset: a template that rendered
nothing must not silently switch a deployment to a fresh local key.

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

One module, longer than most, because the token format, the key and the key file change together;
its sections are the error, the key (sealing and opening), and loading.
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
from pathlib import Path
from typing import Literal

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from synapsex.config.errors import ConfigError
from synapsex.config.settings import Settings

#: the environment variable holding the master key
MASTER_KEY_VARIABLE = "SYNAPSEX_MASTER_KEY"
#: the key file's name inside ``SYNAPSEX_DATA_DIR``
MASTER_KEY_FILE = "master.key"

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
    """The master key: seals values into tokens and opens them again.

    The key lives only inside the AES-GCM object: ``repr`` and ``str`` show the key id and where
    the key came from, and the object refuses to be pickled. One instance holds no per-call state
    and may be shared by every actor. No method waits.
    """

    __slots__ = ("_aead", "_header", "_key_id", "_source")

    def __init__(self, key: bytes, *, source: str = "memory") -> None:
        """Wrap 32 key bytes; ``source`` says where they came from (shown in ``repr``)."""
        if len(key) != _KEY_BYTES:
            raise ValueError(f"a master key is exactly {_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(bytes(key))
        self._key_id = _key_id(key)
        self._header = f"{_VERSION}.{self._key_id}"
        self._source = source

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh random key for tests and tools (a deployment uses :func:`load_master_key`)."""
        return cls(os.urandom(_KEY_BYTES), source="generated")

    @property
    def key_id(self) -> str:
        """The first 8 hex digits of SHA-256 of the key: names the key without revealing it."""
        return self._key_id

    @property
    def source(self) -> str:
        """``SYNAPSEX_MASTER_KEY``, the key file's path, ``"generated"`` or ``"memory"``."""
        return self._source

    def __repr__(self) -> str:
        return f"<MasterKey key_id={self._key_id} source={self._source}>"

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
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, bytes(plaintext), self._associated_data(context))
        return f"{self._header}.{_b64url(nonce + sealed)}"

    def open(self, token: str, *, context: str) -> bytes:
        """The plaintext sealed in ``token`` for ``context``.

        Raises :class:`SealError` for a malformed token, another version or key, a wrong context
        or any alteration; ``ValueError`` for an empty context.
        """
        associated = self._associated_data(context)
        nonce_and_sealed = self._parse(token)
        try:
            return self._aead.decrypt(
                nonce_and_sealed[:_NONCE_BYTES], nonce_and_sealed[_NONCE_BYTES:], associated
            )
        except InvalidTag:
            raise SealError(
                f"the token does not open for context {context!r}: "
                "it was sealed for another context or altered",
                reason="not-authentic",
            ) from None

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

    def _associated_data(self, context: str) -> bytes:
        if not isinstance(context, str):
            raise TypeError("context is a str naming where the value lives")
        if not context:
            raise ValueError("context must name where the value lives, e.g. 'webhook-secret:<id>'")
        return f"{self._header}\x00{context}".encode("utf-8", "surrogatepass")

    def _parse(self, token: str) -> bytes:
        """``token`` → nonce + ciphertext + tag, after checking the version and the key id."""
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
        if key_id != self._key_id:
            raise SealError(
                f"sealed with master key {key_id}, not with this one ({self._key_id})",
                reason="other-key",
            )
        data = _b64url_decode(body) if _BASE64URL_BODY.fullmatch(body) else None
        # Only the canonical encoding is accepted, so the token text itself cannot be varied.
        if data is None or _b64url(data) != body:
            raise SealError("not a sealed token (data is not base64url)", reason="malformed")
        if len(data) < _NONCE_BYTES + _TAG_BYTES:
            raise SealError("not a sealed token (too short)", reason="malformed")
        return data


# -- loading -----------------------------------------------------------------------------------


def load_master_key(settings: Settings) -> MasterKey:
    """The master key from ``SYNAPSEX_MASTER_KEY``, else from (or into) the key file.

    Raises :class:`~synapsex.config.ConfigError` naming ``SYNAPSEX_MASTER_KEY`` for a value that
    is not base64 of 32 bytes (the message never repeats the value), and for a key file that is
    malformed, open to group or others, or cannot be read or created (the message names the file).
    Blocks briefly on file I/O; call it once at start.
    """
    raw = settings.environ.get(MASTER_KEY_VARIABLE)
    if raw is not None:
        try:
            key = _decode_key(raw)
        except ValueError as exc:
            hint = (
                "unset it to use the key file in SYNAPSEX_DATA_DIR, or " if not raw.strip() else ""
            )
            problem = f"{exc}; {hint}generate a key with: {_GENERATE}"
            raise ConfigError(MASTER_KEY_VARIABLE, problem) from None
        return MasterKey(key, source=MASTER_KEY_VARIABLE)
    path = Path(settings.data_dir) / MASTER_KEY_FILE
    try:
        key = _read_key_file(path)
    except FileNotFoundError:
        key = _create_key_file(path)
    return MasterKey(key, source=str(path))


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


def _read_key_file(path: Path) -> bytes:
    """The key in ``path``; ``FileNotFoundError`` if there is none, ConfigError on a problem."""
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
    try:
        return _decode_key(text)
    except ValueError as exc:
        raise _file_error(path, f"is malformed: {exc}") from None


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
        return _read_key_file(path)
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
