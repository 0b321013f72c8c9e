"""Console users: added by ``leadflow users add``, checked by the console's login.

Passwords are kept as argon2id hashes (argon2-cffi); a check of an unknown name still
runs a hash, so a login's answer time does not tell which names exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.engine import utcnow
from shared.db.models import User
from shared.errors import UsageError
from shared.ids import new_id

ROLES = ("viewer", "operator")
_HASHER = PasswordHasher()
_NOBODY = _HASHER.hash("no such user")
#: Shorter passwords are taken (the operator's choice) with a warning from the CLI.
ADVISED_PASSWORD = 8


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    role: str

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


def add(session: Session, name: str, role: str, password: str) -> tuple[Person, bool]:
    """Set a user's role and password: a new user, or a new password and role for the
    user of that name (whether it was new). An unknown role or an empty password is a
    UsageError."""
    name = name.strip()
    if not name:
        raise UsageError("a user needs a name")
    if role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}")
    if not password:
        raise UsageError("a password may not be empty")
    user = session.scalar(select(User).where(User.name == name))
    created = user is None
    if user is None:
        user = User(id=new_id(), name=name, created_at=utcnow())
        session.add(user)
    user.role, user.password_hash = role, _HASHER.hash(password)
    session.flush()
    return Person(user.id, user.name, user.role), created


def check(session: Session, name: str, password: str) -> Person | None:
    """The user whose name and password these are, or None."""
    user = session.scalar(select(User).where(User.name == name.strip()))
    try:
        _HASHER.verify(user.password_hash if user is not None else _NOBODY, password)
    except (VerificationError, InvalidHashError):
        return None
    return Person(user.id, user.name, user.role) if user is not None else None


def get(session: Session, user_id: str) -> Person | None:
    user = session.get(User, user_id)
    return Person(user.id, user.name, user.role) if user is not None else None


def listing(session: Session) -> list[Person]:
    return [Person(u.id, u.name, u.role) for u in session.scalars(select(User).order_by(User.name))]
