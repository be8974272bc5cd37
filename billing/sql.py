"""The statements every completion sends to hold and settle quota, in plain SQL, one
implementation per database.

Built by the ORM each statement cost ~0.5 ms of CPU, most of a completion's time in the gateway
(docs/performance.md); everything else in billing uses the ORM. On PostgreSQL a hold and a
settlement are ONE statement each, committed on their own, so the rows every request of a user
needs are locked only while the server runs it, never while Python works. SQLite (one writer at
a time anyway) runs the same steps as separate statements in a transaction.

The one lock order (docs/quotas.md, "Row locks"): the day's row, then the key's, then the
quota's. A hold takes the key's before the quota's; a settlement the day's, the key's, the
quota's; giving a reservation back the key's, then the quota's. The other order deadlocks
under load. tests/billing/test_sql.py checks each statement's order on PostgreSQL.

Table and column names come from the models' _meta, quoted by the connection: `{quota}` is the
quota's table, `{quota.used_tokens}` one of its columns. Values are named parameters.
"""

import functools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, models, transaction

from billing.models import APIKey, DailyUsage, Quota, Reservation, UsageRecord


class _Table:
    """A model's table in SQL text: `{t}` is its quoted name, `{t.field}` the quoted column of a
    field (a foreign key's `_id` column for a relation)."""

    def __init__(self, model: type[models.Model]):
        self._model = model

    def __str__(self) -> str:
        return connection.ops.quote_name(self._model._meta.db_table)

    def __getattr__(self, name: str) -> str:
        field = self._model._meta.get_field(name)
        if not isinstance(field, models.Field) or not field.column:
            raise AttributeError(f"{self._model.__name__}.{name} is not a column")
        return connection.ops.quote_name(field.column)


def _render(template: str, **fragments: str) -> str:
    """`template` with the tables' names and the given (already rendered) fragments filled in."""
    names = {
        "key": _Table(APIKey),
        "key_models": _Table(APIKey.allowed_models.through),
        "quota": _Table(Quota),
        "reservation": _Table(Reservation),
        "usage": _Table(UsageRecord),
        "day": _Table(DailyUsage),
        "users": _Table(get_user_model()),
    }
    return template.format_map({**names, **fragments})


# --- fragments ------------------------------------------------------------------------------

# What makes the key usable for this request (checked at authentication too; this catches what
# changed since, the key's models included), with room for it.
_KEY_USABLE = """
    {key.id} = %(key)s AND {key.user} = %(user)s
    AND {key.revoked_at} IS NULL AND ({key.expires_at} IS NULL OR {key.expires_at} > %(now)s)
    AND ({key.token_limit} IS NULL
         OR {key.token_limit} >= {key.used_tokens} + {key.reserved_tokens} + %(tokens)s)
    AND ({key.usd_limit} IS NULL OR {key.usd_limit} >= {key.used_usd} + {key.reserved_usd} + %(cost)s)
    AND EXISTS (SELECT 1 FROM {users} WHERE {users.id} = %(user)s AND {users.is_active})
    AND (NOT EXISTS (SELECT 1 FROM {key_models} WHERE {key_models.apikey} = %(key)s)
         OR EXISTS (SELECT 1 FROM {key_models}
                     WHERE {key_models.apikey} = %(key)s AND {key_models.llmmodel} = %(model)s))
"""
# The quota's room, in its current period: a quota to make or to roll into a new period is
# refused here and fixed by the slow path (billing.quotas.quota_get).
_QUOTA_FITS = """
    {quota.user} = %(user)s
    AND {quota.period_start} >= CASE {quota.period} WHEN 'daily' THEN %(daily)s
                                                    WHEN 'weekly' THEN %(weekly)s
                                                    WHEN 'monthly' THEN %(monthly)s
                                                    ELSE {quota.period_start} END
    AND ({quota.unlimited}
         OR (({quota.token_limit} IS NULL
              OR {quota.token_limit} >= {quota.used_tokens} + {quota.reserved_tokens} + %(tokens)s)
             AND ({quota.usd_limit} IS NULL
                  OR {quota.usd_limit} >= {quota.used_usd} + {quota.reserved_usd} + %(cost)s)))
"""
_KEY_ADD_HOLD = """
    {key.reserved_tokens} = {key.reserved_tokens} + %(tokens)s,
    {key.reserved_usd} = {key.reserved_usd} + %(cost)s,
    {key.last_used_at} = %(now)s
"""
_QUOTA_ADD_HOLD = """
    {quota.reserved_tokens} = {quota.reserved_tokens} + %(tokens)s,
    {quota.reserved_usd} = {quota.reserved_usd} + %(cost)s
"""
_RESERVATION_COLUMNS = """
    {reservation.user}, {reservation.api_key}, {reservation.tokens}, {reservation.cost},
    {reservation.created_at}, {reservation.expires_at}
"""
_NEW_USAGE_RECORD = """
    INSERT INTO {usage} ({usage.user}, {usage.api_key}, {usage.dialog}, {usage.message}, {usage.model},
                         {usage.model_name}, {usage.endpoint}, {usage.prompt_tokens}, {usage.completion_tokens},
                         {usage.cached_tokens}, {usage.cache_write_tokens},
                         {usage.cost}, {usage.status}, {usage.request_id}, {usage.gateway_request_id},
                         {usage.created_at}, {usage.settlement})
    VALUES (%(user)s,
            (SELECT {key.id} FROM {key} WHERE {key.id} = %(key)s),  -- the key may be deleted by now
            %(dialog)s, %(message)s, %(model)s, %(model_name)s, %(endpoint)s, %(prompt)s, %(completion)s,
            %(cached)s, %(cache_written)s,
            %(cost)s, %(status)s, %(request_id)s, %(gateway_request_id)s, %(now)s, %(settlement)s)
    ON CONFLICT ({usage.settlement}) DO NOTHING  -- settled already: nothing more is billed
"""
# `{only_if}`: where the settlement's record was new (PostgreSQL: FROM the step that inserted it).
_DAY_ADD = """
    INSERT INTO {day} ({day.user}, {day.model_name}, {day.day}, {day.requests}, {day.prompt_tokens},
                       {day.completion_tokens}, {day.cost})
    SELECT %(user)s, %(model_name)s, %(day)s, 1, %(prompt)s, %(completion)s, %(cost)s {only_if}
    ON CONFLICT ({day.user}, {day.day}, {day.model_name}) DO UPDATE
       SET {day.requests} = {day}.{day.requests} + 1,
           {day.prompt_tokens} = {day}.{day.prompt_tokens} + EXCLUDED.{day.prompt_tokens},
           {day.completion_tokens} = {day}.{day.completion_tokens} + EXCLUDED.{day.completion_tokens},
           {day.cost} = {day}.{day.cost} + EXCLUDED.{day.cost}
"""


def _move_to_used(table: str, *, held_tokens: str, held_cost: str) -> str:
    """Used goes up by what the request used, reserved down by what its reservation still held."""
    return f"""
        {{{table}.used_tokens}} = {{{table}.used_tokens}} + %(used_tokens)s,
        {{{table}.used_usd}} = {{{table}.used_usd}} + %(cost)s,
        {{{table}.reserved_tokens}} = {{{table}.reserved_tokens}} - {held_tokens},
        {{{table}.reserved_usd}} = {{{table}.reserved_usd}} - {held_cost}
    """


# --- the interface --------------------------------------------------------------------------


@dataclass
class HoldParams:
    user: int
    key: int | None
    model: int | None
    tokens: int
    cost: Decimal
    now: datetime
    expires: datetime
    # Starts of the current daily, weekly and monthly periods: a quota still in an older one
    # must first be rolled over.
    daily: datetime
    weekly: datetime
    monthly: datetime


@dataclass
class Hold:
    reservation_id: int | None  # None: refused
    key_refused: bool  # refused by the key's conditions, else by the quota's
    key_limits: tuple[int | None, int | None]  # (requests, tokens) per minute
    user_limits: tuple[int | None, int | None]


@dataclass
class SettleParams:
    reservation: int
    user: int
    key: int | None
    dialog: int | None
    message: int | None
    model: int
    model_name: str
    endpoint: str
    prompt: int
    completion: int
    cached: int
    cache_written: int
    cost: Decimal
    status: str
    request_id: str
    gateway_request_id: str
    now: datetime
    day: date
    settlement: str  # its unique id (hex), UsageRecord.settlement


class Statements:
    """What billing asks of the database; the subclasses say it in each database's SQL."""

    def hold(self, params: HoldParams) -> Hold:
        raise NotImplementedError

    def settle(self, params: SettleParams) -> None:
        raise NotImplementedError

    def give_back(self, reservation: Reservation) -> bool:
        """Release a reservation unused, if it is still held (a stale one may be gone already).
        Call it inside a transaction."""
        held = self._execute(self._release, {"id": reservation.pk})
        if held:
            move = {
                "used_tokens": 0,
                "cost": Decimal(0),
                "held_tokens": reservation.tokens,
                "held_cost": reservation.cost,
                "key": reservation.api_key_id,
                "user": reservation.user_id,
            }
            if reservation.api_key_id:  # the key's row first, then the quota's: the one order
                self._execute(self._key_give_back, move)
            self._execute(self._quota_give_back, move)
        return bool(held)

    @functools.cached_property
    def _release(self) -> str:
        return _render("DELETE FROM {reservation} WHERE {reservation.id} = %(id)s")

    @functools.cached_property
    def _key_give_back(self) -> str:
        move = _move_to_used("key", held_tokens="%(held_tokens)s", held_cost="%(held_cost)s")
        return _render("UPDATE {key} SET {move} WHERE {key.id} = %(key)s", move=_render(move))

    @functools.cached_property
    def _quota_give_back(self) -> str:
        move = _move_to_used("quota", held_tokens="%(held_tokens)s", held_cost="%(held_cost)s")
        return _render("UPDATE {quota} SET {move} WHERE {quota.user} = %(user)s", move=_render(move))

    @staticmethod
    def _execute(statement: str, params: dict[str, Any]) -> Any:
        """Rows for a statement that returns some (SELECT, ... RETURNING), else the rows it changed."""
        adapt = connection.ops.adapt_datetimefield_value
        params = {name: adapt(value) if isinstance(value, datetime) else value for name, value in params.items()}
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else cursor.rowcount


class PostgreSQLStatements(Statements):
    @functools.cached_property
    def _hold(self) -> str:
        # It locks the key's row (if the key is usable and has room), then the quota's (if it has
        # room), and only if both matched adds the reservation to both and inserts it; it also
        # returns the rate limits.
        return _render(
            """
            WITH usable_key AS (
                SELECT {key.id} AS id, {key.requests_per_minute} AS rpm, {key.tokens_per_minute} AS tpm
                  FROM {key} WHERE {key_usable} FOR NO KEY UPDATE
            ), fitting_quota AS (
                SELECT {quota.id} AS id, {quota.requests_per_minute} AS rpm, {quota.tokens_per_minute} AS tpm
                  FROM {quota}
                 WHERE {quota_fits} AND (%(key)s::bigint IS NULL OR EXISTS (SELECT 1 FROM usable_key))
                   FOR NO KEY UPDATE
            ), key_hold AS (
                UPDATE {key} SET {key_add_hold}
                 WHERE {key.id} IN (SELECT id FROM usable_key) AND EXISTS (SELECT 1 FROM fitting_quota)
            ), quota_hold AS (
                UPDATE {quota} SET {quota_add_hold} WHERE {quota.id} IN (SELECT id FROM fitting_quota)
            ), reservation AS (
                INSERT INTO {reservation} ({reservation_columns})
                SELECT %(user)s, %(key)s, %(tokens)s, %(cost)s, %(now)s, %(expires)s FROM fitting_quota
                RETURNING {reservation.id} AS id
            )
            SELECT (SELECT id FROM reservation), EXISTS (SELECT 1 FROM usable_key),
                   (SELECT rpm FROM usable_key), (SELECT tpm FROM usable_key),
                   (SELECT rpm FROM fitting_quota), (SELECT tpm FROM fitting_quota)
            """,
            key_usable=_render(_KEY_USABLE),
            quota_fits=_render(_QUOTA_FITS),
            key_add_hold=_render(_KEY_ADD_HOLD),
            quota_add_hold=_render(_QUOTA_ADD_HOLD),
            reservation_columns=_render(_RESERVATION_COLUMNS),
        )

    def hold(self, params: HoldParams) -> Hold:
        reservation_id, key_usable, key_rpm, key_tpm, user_rpm, user_tpm = self._execute(self._hold, vars(params))[0]
        return Hold(
            reservation_id,
            key_refused=reservation_id is None and params.key is not None and not key_usable,
            key_limits=(key_rpm, key_tpm),
            user_limits=(user_rpm, user_tpm),
        )

    @functools.cached_property
    def _settle(self) -> str:
        # Each step waits for the ones before it (the FROM of a count over them), so the rows are
        # locked in the one order: the day's, the key's, the quota's. Every step after the usage
        # record's is FROM it: a settlement already applied (its record there) changes nothing.
        return _render(
            """
            WITH record AS (
                {new_usage_record} RETURNING 1
            ), released AS (
                DELETE FROM {reservation} USING record WHERE {reservation.id} = %(reservation)s
                RETURNING {reservation.tokens} AS tokens, {reservation.cost} AS cost
            ), given_back AS (
                SELECT COALESCE(SUM(tokens), 0) AS tokens, COALESCE(SUM(cost), 0) AS cost FROM released
            ), day_added AS (
                {day_add} RETURNING 1
            ), key_settled AS (
                UPDATE {key} SET {key_move}
                  FROM record, given_back, (SELECT count(*) FROM day_added) AS after_day
                 WHERE {key}.{key.id} = %(key)s
                RETURNING 1
            )
            -- After the day's row and the key's, also when there is no key (key_settled is then
            -- planned away, and with it its wait for the day's row).
            UPDATE {quota} SET {quota_move}
              FROM record, given_back, (SELECT count(*) FROM day_added) AS after_day,
                   (SELECT count(*) FROM key_settled) AS after_key
             WHERE {quota}.{quota.user} = %(user)s
            """,
            new_usage_record=_render(_NEW_USAGE_RECORD),
            day_add=_render(_DAY_ADD, only_if="FROM record"),
            key_move=_render(_move_to_used("key", held_tokens="given_back.tokens", held_cost="given_back.cost")),
            quota_move=_render(_move_to_used("quota", held_tokens="given_back.tokens", held_cost="given_back.cost")),
        )

    def settle(self, params: SettleParams) -> None:
        used = {"used_tokens": params.prompt + params.completion}
        self._execute(self._settle, vars(params) | used | {"settlement": _settlement_value(params)})


def _settlement_value(params: SettleParams) -> Any:
    """The settlement's id as this database stores a UUID."""
    return UsageRecord._meta.get_field("settlement").get_db_prep_value(params.settlement, connection)


class _Refused(Exception):
    def __init__(self, *, key: bool):
        self.key = key


class SQLiteStatements(Statements):
    @functools.cached_property
    def _key_hold(self) -> str:
        return _render(
            """
            UPDATE {key} SET {key_add_hold} WHERE {key_usable}
            RETURNING {key.requests_per_minute}, {key.tokens_per_minute}
            """,
            key_add_hold=_render(_KEY_ADD_HOLD),
            key_usable=_render(_KEY_USABLE),
        )

    @functools.cached_property
    def _quota_hold(self) -> str:
        return _render(
            """
            UPDATE {quota} SET {quota_add_hold} WHERE {quota_fits}
            RETURNING {quota.requests_per_minute}, {quota.tokens_per_minute}
            """,
            quota_add_hold=_render(_QUOTA_ADD_HOLD),
            quota_fits=_render(_QUOTA_FITS),
        )

    @functools.cached_property
    def _new_reservation(self) -> str:
        return _render(
            """
            INSERT INTO {reservation} ({reservation_columns})
            VALUES (%(user)s, %(key)s, %(tokens)s, %(cost)s, %(now)s, %(expires)s)
            RETURNING {reservation.id}
            """,
            reservation_columns=_render(_RESERVATION_COLUMNS),
        )

    def hold(self, params: HoldParams) -> Hold:
        values = vars(params)
        key_limits: tuple[int | None, int | None] = (None, None)
        try:
            with transaction.atomic():  # a refusal rolls back what was held
                if params.key is not None:
                    rows = self._execute(self._key_hold, values)
                    if not rows:
                        raise _Refused(key=True)
                    key_limits = rows[0]
                rows = self._execute(self._quota_hold, values)
                if not rows:
                    raise _Refused(key=False)
                user_limits = rows[0]
                reservation_id = self._execute(self._new_reservation, values)[0][0]
        except _Refused as refused:
            return Hold(None, key_refused=refused.key, key_limits=(None, None), user_limits=(None, None))
        return Hold(reservation_id, key_refused=False, key_limits=key_limits, user_limits=user_limits)

    @functools.cached_property
    def _release_returning(self) -> str:
        return _render(
            """
            DELETE FROM {reservation} WHERE {reservation.id} = %(reservation)s
            RETURNING {reservation.tokens}, {reservation.cost}
            """
        )

    @functools.cached_property
    def _new_usage_record(self) -> str:
        return _render(_NEW_USAGE_RECORD)

    @functools.cached_property
    def _day_add(self) -> str:
        return _render(_DAY_ADD, only_if="WHERE true")  # (SQLite reads ON CONFLICT after a bare SELECT as a join)

    def settle(self, params: SettleParams) -> None:
        values = vars(params) | {"used_tokens": params.prompt + params.completion}
        values["settlement"] = _settlement_value(params)
        with transaction.atomic(savepoint=False):
            if not self._execute(self._new_usage_record, values):
                return  # settled already
            released = self._execute(self._release_returning, values)
            held_tokens, held_cost = released[0] if released else (0, Decimal(0))
            # Last, the rows every request of the user needs, in the one order: the day's, the
            # key's, the quota's.
            self._execute(self._day_add, values)
            move = values | {"held_tokens": held_tokens, "held_cost": held_cost}
            if params.key is not None:
                self._execute(self._key_give_back, move)
            self._execute(self._quota_give_back, move)


_IMPLEMENTATIONS: dict[str, type[Statements]] = {"postgresql": PostgreSQLStatements, "sqlite": SQLiteStatements}


@functools.cache
def _statements_for(vendor: str) -> Statements:
    return _IMPLEMENTATIONS[vendor]()


def statements() -> Statements:
    """The statements for the database in use, built once per process."""
    return _statements_for(connection.vendor)
