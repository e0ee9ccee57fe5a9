"""Reader PIN credentials: a keyed hash (HMAC-SHA256 with a server-side PIN key) that costs microseconds.

A 4 to 8 digit PIN has at most 10^8 values, so no work factor protects it against an attacker who holds
its hash and everything needed to compute it: PBKDF2 at Django's cost only made every sign-up and
sign-in cost half a CPU-second. What protects a PIN is a key the database does not hold (a copy of the
database alone cannot test a single guess) and, online, the attempt limits in `readers`. The design and
its limits are argued in docs/security.md.

Stored form, in the Django user's password column: ``rb_pin_hmac$<key id>$<salt>$<base64 HMAC>``, with
HMAC = HMAC-SHA256(PIN key, "<salt>$<pin>"). The salt is per reader (equal PINs give different hashes);
the key id names the key (a hash of it, which reveals nothing of the key) so a changed key is noticed.

Only reader PINs use this form: admin and researcher passwords stay on Django's strong hashers, and a
PIN hash is never written for a user who holds one of those roles. This module must never log or store
a PIN in clear, and must never accept a PIN hash made with another key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher, check_password, identify_hasher, mask_hash
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)

ALGORITHM = "rb_pin_hmac"
SALT_CHARS = 22  # about 130 bits of randomness, as Django's own salts


def pin_key() -> bytes:
    """Return the PIN key: READERBOARD_PIN_KEY when set, else one derived from SECRET_KEY (never stored in the DB)."""
    configured = getattr(settings, "READERBOARD_PIN_KEY", "") or ""
    if configured:
        return configured.encode()
    # A derived key keeps every web process (and machine) of a deployment on the same key without a
    # second secret to distribute; it is a different value from SECRET_KEY, so neither leaks the other.
    return hmac.new(settings.SECRET_KEY.encode(), b"readerboard.pin-key.v1", hashlib.sha256).digest()


def key_id(key: bytes | None = None) -> str:
    """Return a short public name of a PIN key (8 hex digits of its SHA-256)."""
    return hashlib.sha256(b"readerboard.pin-key-id:" + (key if key is not None else pin_key())).hexdigest()[:8]


def hash_pin(pin: str, *, salt: str | None = None) -> str:
    """Return the stored form of a PIN under the current key, with a fresh random salt unless one is given."""
    salt = salt or secrets.token_urlsafe(SALT_CHARS)[:SALT_CHARS]
    if "$" in salt:
        raise ValueError(f"a PIN salt must not contain '$': {salt!r}")
    key = pin_key()
    return f"{ALGORITHM}${key_id(key)}${salt}${_mac(key, salt, pin)}"


def is_pin_hash(encoded: str | None) -> bool:
    """Return True when a stored password is a PIN hash of this module (of any key)."""
    return bool(encoded) and encoded.startswith(ALGORITHM + "$")


def verify_pin(pin: str, encoded: str) -> bool:
    """Return True when `pin` matches the stored PIN hash; False for any other form or another key."""
    try:
        algorithm, stored_key_id, salt, mac = encoded.split("$", 3)
    except ValueError:
        return False
    if algorithm != ALGORITHM:
        return False
    key = pin_key()
    if stored_key_id != key_id(key):
        logger.warning("a reader's PIN hash was made with another PIN key (%s); has the key changed?", stored_key_id)
        return False
    return constant_time_compare(_mac(key, salt, pin), mac)


def check_stored_pin(pin: str, encoded: str | None) -> tuple[bool, bool]:
    """Return (matches, needs_rehash): a PIN hash is checked here; an older Django hash by its own hasher.

    Django's hashers cost what they cost (PBKDF2: about half a CPU-second), once per reader: a match
    says `needs_rehash` so the caller stores the PIN hash. Unusable or unknown forms never match.
    """
    if not encoded:
        return False, False
    if is_pin_hash(encoded):
        return verify_pin(pin, encoded), False
    try:
        identify_hasher(encoded)
    except ValueError:
        return False, False
    # No setter: the caller decides whether to store a PIN hash (never for admins and researchers).
    matches = check_password(pin, encoded)
    return matches, matches


def spend_equal_time(pin: str) -> None:
    """Do the work of one PIN check against nothing, so an unknown name answers in the time a known one does."""
    _mac(pin_key(), "0" * SALT_CHARS, pin)


def _mac(key: bytes, salt: str, pin: str) -> str:
    digest = hmac.new(key, f"{salt}${pin}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii").rstrip("=")


class PinHMACHasher(BasePasswordHasher):
    """Django's view of a PIN hash, so `check_password`, the admin and `has_usable_password` know the form.

    It is listed after Django's hashers in PASSWORD_HASHERS, so it is never the default: only
    `hash_pin` writes it, for readers. `must_update` is False, and readers never sign in through
    Django's `authenticate` (which would re-hash with the default hasher).
    """

    algorithm = ALGORITHM

    def salt(self) -> str:
        return secrets.token_urlsafe(SALT_CHARS)[:SALT_CHARS]

    def encode(self, password: str, salt: str) -> str:
        self._check_encode_args(password, salt)
        return hash_pin(password, salt=salt)

    def decode(self, encoded: str) -> dict:
        algorithm, stored_key_id, salt, mac = encoded.split("$", 3)
        return {"algorithm": algorithm, "key_id": stored_key_id, "salt": salt, "hash": mac}

    def verify(self, password: str, encoded: str) -> bool:
        return verify_pin(password, encoded)

    def safe_summary(self, encoded: str) -> dict:
        decoded = self.decode(encoded)
        return {"algorithm": decoded["algorithm"], "key id": decoded["key_id"], "salt": mask_hash(decoded["salt"])}

    def must_update(self, encoded: str) -> bool:
        return False

    def harden_runtime(self, password: str, encoded: str) -> None:
        return None
