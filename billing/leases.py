"""Leases: a reservation is held only while the server process that made it is alive.

A reservation's `expires_at` is a lease of RESERVATION_LEASE_SECONDS. The process that holds it
renews the leases of all its reservations in flight at once, every quarter lease
(`leases_renew`, one UPDATE, whatever the number of calls), so a call however long keeps its
reservation; the process also releases the reservations whose lease has lapsed
(billing.admission.reservations_release_stale): those of a process that died, freed within about
a lease and a quarter. No request sends a statement for this: the reservations in flight are
known to the process (`lease_begin` at the hold, `lease_end` at settlement or release).

These functions are sync (the renewal runs through common.db.db_phase); the process's
heartbeat is billing.admission.reservations_keep.
"""

import threading
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from billing.models import Reservation

_lock = threading.Lock()
_in_flight: set[int] = set()  # this process's reservations, by id


def lease_expiry():
    """When a lease taken or renewed now lapses."""
    return timezone.now() + timedelta(seconds=settings.RESERVATION_LEASE_SECONDS)


def lease_begin(reservation_id: int) -> None:
    with _lock:
        _in_flight.add(reservation_id)


def lease_end(reservation_id: int) -> None:
    """The reservation is settled or released (or its settlement failed: the lease then lapses
    and the reservation is released like a dead process's)."""
    with _lock:
        _in_flight.discard(reservation_id)


def leases_in_flight() -> list[int]:
    with _lock:
        return sorted(_in_flight)


def leases_renew() -> int:
    """Renew the leases of this process's reservations in flight, in one statement. Returns how
    many were renewed."""
    held = leases_in_flight()
    if not held:
        return 0
    return Reservation.objects.filter(pk__in=held).update(expires_at=lease_expiry())
