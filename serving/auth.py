"""Who is calling: bearer-key authentication and per-key model allow-lists.

Keys are compared as SHA-256 digests with :func:`hmac.compare_digest`, against
every entry, so the time taken does not reveal which entry came close.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from llm.errors import BadInputError
from serving.config import ServeConfig, is_loopback
from serving.errors import AuthenticationError, PermissionDeniedError
from serving.keys import ENV_VAR, ApiKeyEntry, hash_key, load_keys

# The key id written to the audit log when the gateway runs without keys (loopback only).
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    """The authenticated client of one request."""

    key_id: str
    entry: ApiKeyEntry | None

    def may_use(self, model: str) -> bool:
        """True when this caller may use ``model`` (always, without keys)."""
        return self.entry is None or self.entry.allows(model)

    def check_model(self, model: str) -> None:
        """Raise 403 unless this caller may use ``model``.

        Raises:
            PermissionDeniedError: the key's allow-list does not name ``model``.
        """
        if not self.may_use(model):
            raise PermissionDeniedError(
                f"API key {self.key_id!r} is not allowed to use this model",
                param="model",
                code="model_not_allowed",
            )


class KeyRing:
    """The configured API keys; empty means open access (allowed on loopback only)."""

    def __init__(self, entries: list[ApiKeyEntry]) -> None:
        self._entries = list(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        """True when requests must carry a key."""
        return bool(self._entries)

    def authenticate(self, authorization: str | None) -> Caller:
        """Identify the caller from the ``Authorization`` header.

        Args:
            authorization: the header value (``Bearer <key>``), or None.

        Returns:
            The caller (anonymous when no keys are configured).

        Raises:
            AuthenticationError: keys are configured and the header is missing or the key
                is unknown.
        """
        if not self.enabled:
            return Caller(ANONYMOUS, None)
        if not authorization:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthenticationError(
                "malformed Authorization header: expected 'Bearer <key>'", code="invalid_api_key"
            )
        digest = hash_key(key.strip())
        found: ApiKeyEntry | None = None
        for entry in self._entries:
            # no early exit: every entry is compared
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        if found is None:
            raise AuthenticationError("invalid API key", code="invalid_api_key")
        return Caller(found.id, found)


def check_exposure(config: ServeConfig, keys: KeyRing) -> None:
    """Refuse an unsafe combination of bind address and keys.

    Args:
        config: the gateway settings (host, require_api_keys).
        keys: the loaded keys.

    Raises:
        BadInputError: no keys while the host is not loopback or keys are required.
    """
    if keys.enabled:
        return
    if not is_loopback(config.host):
        raise BadInputError(
            f"host: {config.host} is not a loopback address, so API keys are required: "
            f"pass --api-keys FILE (or set {ENV_VAR}); create one with "
            "'clinical-llm serve keygen'"
        )
    if config.require_api_keys:
        raise BadInputError(
            f"require_api_keys: true but no keys configured (api_keys_file or {ENV_VAR})"
        )


def load_keyring(config: ServeConfig) -> KeyRing:
    """The configured keys, loaded once, and refused when unsafe for the bind address.

    Args:
        config: the gateway settings (``api_keys_file``, host, ``require_api_keys``);
            ``CLINICAL_LLM_API_KEYS`` adds keys.

    Returns:
        The key ring (empty: open access on loopback).

    Raises:
        BadInputError: a bad keys file or environment value, or no keys while the host is
            not loopback or keys are required.
    """
    keys = KeyRing(load_keys(config.api_keys_file))
    check_exposure(config, keys)
    return keys
