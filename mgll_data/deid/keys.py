"""Keyed pseudonyms and the key (the "salt") they are derived with.

Ids are replaced by HMAC-SHA256 pseudonyms keyed by a salt that lives outside the dataset: nobody holding
only the dataset can re-derive a pseudonym from a known MRN, while the data owner gets the same
pseudonyms on every rebuild (incremental builds link up).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

SALT_BYTES = 32
MIN_SALT_BYTES = 32
SALT_ENV = "MGLL_SALT_FILE"
PSEUDONYM_HEX = 20

# Pseudonym prefixes per kind, so a patient pseudonym can never equal a study pseudonym even for equal
# input values (the kind is also part of the HMAC message).
_KIND_PREFIX = {
    "pat": "pat", "patient": "pat",
    "stu": "stu", "study": "stu",
    "img": "img", "image": "img",
    "src": "src", "source": "src",
}
_KIND_RE = re.compile(r"[a-z]{2,8}")


# --------------------------------------------------------------------------------------------- salt


def default_salt_path() -> Path:
    """The salt lives in the user's config, never beside the data it protects."""
    override = os.environ.get(SALT_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".config" / "mgll" / "salt"


def load_salt(path: Path, on_create: Callable[[Path], None] | None = None) -> bytes:
    """Read the pseudonym key, creating a random one (mode 0600) on first use.

    `on_create(path)` is called when this call created the file: a new key must be announced, because
    losing it breaks the link between rebuilds and leaking it lets its holder re-derive pseudonyms.
    The file may hold raw bytes or hex text (so a key kept in a password vault can be pasted in).
    A short or empty file is refused rather than silently weakening every pseudonym.
    """
    path = Path(path).expanduser()
    if not path.exists():
        try:
            created = _create_salt(path)
        except OSError as exc:
            raise ValueError(
                f"salt file {path} cannot be created: {exc.strerror or type(exc).__name__} ({exc.filename or path}); "
                "choose a writable place with --salt-file or $MGLL_SALT_FILE"
            ) from None
        if created and on_create is not None:
            on_create(path)
    if path.is_dir():
        raise ValueError(f"salt file {path} is a directory; point MGLL_SALT_FILE / --salt-file at a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"salt file {path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    text = raw.strip()
    if re.fullmatch(rb"[0-9a-fA-F]+", text or b"-") and len(text) % 2 == 0 and len(text) >= 2 * MIN_SALT_BYTES:
        return bytes.fromhex(text.decode("ascii"))
    if len(raw) < MIN_SALT_BYTES:
        raise ValueError(
            f"salt file {path} is corrupt or too short ({len(raw)} bytes, need at least {MIN_SALT_BYTES}); "
            "restore it from backup (a new salt changes every pseudonym)"
        )
    return raw


def _create_salt(path: Path) -> bool:
    """True when this call created the file (False: a concurrent first run won the race)."""
    # Write to a private temp file and hard-link it into place: concurrent first runs (several workers or
    # builds) never see a half-written salt, and the first writer wins.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(SALT_BYTES))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------- pseudonyms


def pseudonym(salt: bytes, kind: str, value: str) -> str:
    """Keyed, kind-prefixed pseudonym, e.g. pseudonym(salt, "patient", "10000032") -> "pat-3f0c…" (20 hex)."""
    prefix = _kind_prefix(kind)
    message = f"{prefix}\x00{str(value).strip()}".encode("utf-8", "surrogatepass")
    digest = hmac.new(salt, message, hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:PSEUDONYM_HEX]}"


def image_id(salt: bytes, content_sha256: str, source_relpath: str) -> str:
    """Stable across rebuilds; the path is included so two identical files in two studies stay two rows."""
    return pseudonym(salt, "img", f"{content_sha256}\x00{source_relpath}")


def source_key(salt: bytes, source_relpath: str) -> str:
    """Names an input in shareable tables (rejects) without revealing its path."""
    return pseudonym(salt, "src", source_relpath)


def _kind_prefix(kind: str) -> str:
    key = str(kind).strip().lower()
    if key in _KIND_PREFIX:
        return _KIND_PREFIX[key]
    if not _KIND_RE.fullmatch(key):
        raise ValueError(f"pseudonym kind must be 2-8 lower-case letters (e.g. 'patient', 'study'), got {kind!r}")
    return key
