"""Ids for leads and events: 96 random bits as 24 hex characters, unguessable."""

import secrets


def new_id() -> str:
    return secrets.token_hex(12)
