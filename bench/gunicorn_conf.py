"""Gunicorn settings the benchmark adds to the production command: a SQL statement counter.

Each worker counts the statements Django sends (an execute wrapper on every new connection)
into an 8-byte file of its own under $BENCH_QUERY_COUNT_DIR, which bench.run sums between
scenarios. One locked increment per statement (well under a microsecond); nothing else changes.
Without the variable this file does nothing.
"""

import mmap
import os
import struct
import threading


def post_worker_init(worker):
    directory = os.environ.get("BENCH_QUERY_COUNT_DIR")
    if not directory:
        return
    from django.db.backends.signals import connection_created

    path = os.path.join(directory, f"queries-{os.getpid()}")
    with open(path, "wb") as f:
        f.write(b"\0" * 8)
    fd = os.open(path, os.O_RDWR)
    counts = mmap.mmap(fd, 8)
    lock = threading.Lock()
    state = {"n": 0}

    def count(execute, sql, params, many, context):
        with lock:
            state["n"] += 1
            struct.pack_into("Q", counts, 0, state["n"])
        return execute(sql, params, many, context)

    def on_connect(sender, connection, **kwargs):
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)

    connection_created.connect(on_connect, weak=False)
    worker._bench_query_counter = (counts, fd)  # keep the mapping alive
