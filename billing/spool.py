"""Settlements the database could not take, kept on disk until it can (docs/reliability.md).

Each process appends to its own file in SETTLEMENT_SPOOL_DIR, one JSON line per settlement,
fsync'd before the client is answered. `spool_replay` (each worker, at start and periodically;
`manage.py spool_replay`) applies every file's lines and empties it. A settlement carries its id
(UsageRecord.settlement), so a line applied twice (a crash between applying and emptying) bills
once. Every access to a file holds its flock: a replayer never empties a file mid-append, and
two replayers never apply the same file at once.
"""

import fcntl
import json
import logging
import os
import socket
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from billing.leases import lease_end
from billing.sql import SettleParams, statements

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"


def _directory() -> Path:
    return Path(settings.SETTLEMENT_SPOOL_DIR)


def _own_file() -> Path:
    return _directory() / f"settlements-{socket.gethostname()}-{os.getpid()}{SUFFIX}"


def _line(params: SettleParams) -> bytes:
    values: dict[str, Any] = {}
    for name, value in vars(params).items():
        values[name] = str(value) if isinstance(value, Decimal) else value
        if isinstance(value, date):  # a datetime too
            values[name] = value.isoformat()
    return (json.dumps(values) + "\n").encode()


def _params(line: str) -> SettleParams:
    values = json.loads(line)
    values["cost"] = Decimal(values["cost"])
    values["now"] = datetime.fromisoformat(values["now"])
    values["day"] = date.fromisoformat(values["day"])
    return SettleParams(**values)


def settlement_spool(params: SettleParams) -> None:
    """Keep a settlement the database could not take; on disk once this returns."""
    _directory().mkdir(parents=True, exist_ok=True)
    line = _line(params)
    while True:
        fd = os.open(_own_file(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink == 0:
                continue  # a replayer emptied and removed it meanwhile: append to a new one
            os.write(fd, line)
            os.fsync(fd)
            logger.warning("Settlement %s spooled: the database is unavailable.", params.settlement)
            return
        finally:
            os.close(fd)  # and with it the lock


def spool_pending() -> bool:
    """Whether any spooled settlement waits (no database needed to tell)."""
    try:
        return any(path.stat().st_size for path in _directory().glob(f"*{SUFFIX}"))
    except FileNotFoundError:
        return False


def spool_replay() -> int:
    """Apply every spooled settlement (each file another replayer is not busy with), emptying
    the files; how many were applied. Raises the database's error if it is still unavailable
    (what was applied stays applied, and the rest stays spooled)."""
    applied = 0
    for path in sorted(_directory().glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            with os.fdopen(os.dup(fd), encoding="utf-8") as lines:
                for line in lines:
                    applied += _apply(line, path)
            os.ftruncate(fd, 0)
            os.fsync(fd)
            if path != _own_file():
                path.unlink()  # its process may be gone; one still appending sees it and makes a new one
        finally:
            os.close(fd)
    if applied:
        logger.warning("%d spooled settlements applied.", applied)
    return applied


def _apply(line: str, path: Path) -> int:
    try:
        params = _params(line)
    except (ValueError, TypeError, KeyError):
        # Only a line cut short by a crash while it was written: its client was never answered.
        logger.error("An unreadable line in %s was skipped: %r", path, line[:200])
        return 0
    with transaction.atomic():
        statements().settle(params)
    lease_end(params.reservation)  # this process's call, spooled: its hold is billed now
    return 1
