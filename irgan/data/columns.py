"""Which field of a ratings file holds which column: the known column names, header detection, and
the mapping of header fields, parquet columns or ``columns=`` to roles.

A role is one of ``DEFAULT_COLUMNS`` or None for a field to skip; a list of roles has one entry
per field, in file order. The rules are the "Columns" paragraph of the readers module docstring.
"""
from __future__ import annotations

import re
from typing import Sequence

from irgan.data.checks import _short
from irgan.errors import DataError

DEFAULT_COLUMNS = ("user", "item", "rating", "timestamp")
# Header names mapped to each column, compared by _name_key (so "userId", "USER_ID" and
# "user_id:token" all read as "userid").
COLUMN_NAMES = {
    "user": ("user", "user_id", "users", "uid", "customer", "customer_id", "reviewer_id", "member_id",
             "visitor_id", "account_id", "client_id", "person_id"),
    "item": ("item", "item_id", "items", "iid", "movie", "movie_id", "product", "product_id", "asin", "isbn",
             "business_id", "track_id", "song_id", "book_id", "artist_id", "anime_id", "game_id", "recipe_id",
             "article_id", "video_id", "news_id", "venue_id", "poi_id", "sku"),
    "rating": ("rating", "ratings", "score", "stars", "star", "rate", "overall", "preference", "book_rating"),
    "timestamp": ("timestamp", "time", "date", "datetime", "ts", "unix_time", "unix_review_time", "created_at"),
}
_BY_WIDTH = {2: ("user", "item"), 3: ("user", "item", "rating"), 4: DEFAULT_COLUMNS}
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _looks_like_header(fields: list[str], following: list[str] | None) -> bool:
    """No field is a number, and one is a known column name or the next line holds a number."""
    if any(_NUMBER.fullmatch(field.strip()) for field in fields):
        return False
    if any(_role_of(field) for field in fields):
        return True
    return following is not None and any(_NUMBER.fullmatch(field.strip()) for field in following)


def _name_key(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", re.sub(r":\w+$", "", name.strip()).lower())


_ROLE_OF = {_name_key(name): role for role, names in COLUMN_NAMES.items() for name in names}


def _role_of(name: str) -> str | None:
    return _ROLE_OF.get(_name_key(name))


def _roles_from_columns(where: str, columns: Sequence[str | None] | str) -> list[str | None]:
    """The role of each field named by ``columns``; DataError for unknown names, repeats, or no user/item."""
    try:
        entries = columns.split(",") if isinstance(columns, str) else list(columns)
    except TypeError:
        raise DataError(f"{where}: columns must be a sequence of names or a comma-separated string, "
                        f"got {type(columns).__name__}") from None
    roles: list[str | None] = []
    for entry in entries:
        if entry is None or (isinstance(entry, str) and entry.strip() in ("", "-")):
            roles.append(None)
            continue
        role = _role_of(entry) if isinstance(entry, str) else None
        if role is None:
            raise DataError(f"{where}: columns={_short(columns)}: {entry!r} is not user, item, rating, timestamp, "
                            "or '-' for a field to skip")
        if role in roles:
            raise DataError(f"{where}: columns={_short(columns)} names the {role} column twice")
        roles.append(role)
    missing = [role for role in ("user", "item") if role not in roles]
    if missing:
        raise DataError(f"{where}: columns={_short(columns)} has no {' and no '.join(missing)} column")
    return roles


def _roles_from_header(where: str, fields: list[str], text: str | None = None, kind: str = "header"
                       ) -> list[str | None]:
    """The role of each header field (None: ignored); DataError when user or item is missing or named twice."""
    roles = [_role_of(field) for field in fields]
    twice = next((role for role in roles if role and roles.count(role) > 1), None)
    missing = [role for role in ("user", "item") if role not in roles]
    if twice is None and not missing:
        return roles
    guess = [role if role and role not in roles[:k] else None for k, role in enumerate(roles)]
    for role in missing:  # an example for the message: missing columns in the first unnamed places
        guess[next((k for k, r in enumerate(guess) if r is None), len(guess) - 1)] = role
    example = ",".join(role or "-" for role in guess)
    if twice:
        problem = f"names the {twice} column twice ({', '.join(repr(f) for f, r in zip(fields, roles) if r == twice)})"
    else:
        problem = f"has no {' and no '.join(missing)} column"
    data_hint = "; or header=False if that line is data" if text is not None else ""
    raise DataError(f"{where}: the {kind} {_short(fields, 120)} {problem}: name every field in order with "
                    f"columns=, e.g. columns={example!r} ('-' skips a field){data_hint}")


def _roles_by_width(where: str, fields: list[str], text: str) -> list[str | None]:
    if len(fields) not in _BY_WIDTH:
        raise DataError(f"{where}: expected 2-4 fields, found {len(fields)} (give the file a header, or name the "
                        f"fields with columns=): {_short(text, 80)}")
    return list(_BY_WIDTH[len(fields)])


def _ignored(fields: list[str], roles: list[str | None]) -> list[str]:
    """Header fields mapped to no column."""
    return [field for field, role in zip(fields, roles) if role is None]
