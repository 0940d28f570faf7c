"""Running one piece of work in many threads at once, released together by a barrier."""

from __future__ import annotations

import threading

from django.db import connection

from tests.fakes import fake_twilio  # noqa: F401  (the fixture)


def in_threads(n: int, work) -> list:
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as error:
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
