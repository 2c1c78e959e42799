"""Read models of the operator's console: requests by state over a time window, and lists that
page by key (never by offset), so that the thousandth page costs what the first does."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from adapters.store.engine import Database
from adapters.store.records import naive
from adapters.store.tables import requests_table

_SINCE = sa.bindparam("since", type_=sa.DateTime)
_BY_STATE_SINCE = (
    sa.select(requests_table.c.state, sa.func.count())
    .where(requests_table.c.received_at >= _SINCE)
    .group_by(requests_table.c.state)
)


class Browse(Database):
    def requests_by_state_since(self, since: dt.datetime) -> dict[str, int]:
        """How many requests received since ``since`` are in each state."""
        with self.reading() as conn:
            return dict(conn.execute(_BY_STATE_SINCE, {"since": naive(since)}).all())
