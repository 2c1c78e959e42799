"""Who may log in to the console, and with what role.

Either ``CONSOLE_PASSWORD`` holds the password hash of one user, ``operator``, or
``CONSOLE_USERS_FILE`` names a file of users, one a line: ``name role hash``, ``role`` being
``operator`` (sees everything, may act) or ``viewer`` (sees everything, acts on nothing); blank
lines and lines starting with ``#`` are skipped. The console refuses to start with neither.

Only hashes are kept (werkzeug's scrypt, printed by ``callbridge console --hash-password``). A
name that is not a user is checked against a hash all the same, so that the time a refusal
takes does not tell which names exist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import re

from werkzeug.security import check_password_hash, generate_password_hash

from adapters.config import PASSWORD_HASH, ConfigError, Settings

OPERATOR, VIEWER = "operator", "viewer"
ROLES = (OPERATOR, VIEWER)
SINGLE_USER = "operator"
NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MAX_USERS_FILE_BYTES = 1024 * 1024
# Checked when the name is unknown, so that a refusal takes as long either way.
_DECOY = generate_password_hash("not a password of anyone")


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str = dataclasses.field(repr=False)

    @property
    def can_act(self) -> bool:
        return self.role == OPERATOR

    @property
    def fingerprint(self) -> str:
        """Changes with the password: a session made before a change is no longer taken."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Users:
    by_name: dict[str, User]

    def get(self, name: str) -> User | None:
        return self.by_name.get(name)

    def check(self, name: str, password: str) -> User | None:
        """The user, if the password is theirs."""
        user = self.by_name.get(name)
        matches = check_password_hash(user.password_hash if user else _DECOY, password)
        return user if user is not None and matches else None


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def load_users(settings: Settings) -> Users:
    """The users of ``CONSOLE_PASSWORD`` or ``CONSOLE_USERS_FILE``; ConfigError without one."""
    if settings.console_password and settings.console_users_file:
        raise ConfigError("set CONSOLE_PASSWORD or CONSOLE_USERS_FILE, not both")
    if settings.console_password:
        return Users({SINGLE_USER: User(SINGLE_USER, OPERATOR, settings.console_password)})
    if settings.console_users_file:
        return read_users_file(pathlib.Path(settings.console_users_file))
    raise ConfigError(
        "the console needs its users: set CONSOLE_PASSWORD to a hash printed by "
        "`callbridge console --hash-password`, or CONSOLE_USERS_FILE to a file of users"
    )


def read_users_file(path: pathlib.Path) -> Users:
    """Users from a file of ``name role hash`` lines; ConfigError naming the line at fault."""
    where = f"CONSOLE_USERS_FILE {path}"
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_USERS_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_USERS_FILE_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_USERS_FILE_BYTES} bytes")
    users: dict[str, User] = {}
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user = _user_of(line, f"{where} line {number}")
        if user.name in users:
            raise ConfigError(f"{where} line {number}: user {user.name} is named twice")
        users[user.name] = user
    if not users:
        raise ConfigError(f"{where}: names no user")
    return Users(users)


def _user_of(line: str, where: str) -> User:
    parts = line.split()
    if len(parts) != 3:
        raise ConfigError(f"{where}: must be `name role hash` ({len(parts)} fields)")
    name, role, password_hash = parts
    if not NAME.fullmatch(name):
        raise ConfigError(f"{where}: a name is 1-64 letters, digits and ._@-")
    if role not in ROLES:
        raise ConfigError(f"{where}: the role must be operator or viewer, not {role[:20]!r}")
    if not PASSWORD_HASH.fullmatch(password_hash):
        raise ConfigError(
            f"{where}: the third field must be a hash printed by "
            "`callbridge console --hash-password`, not a password"
        )
    return User(name, role, password_hash)
