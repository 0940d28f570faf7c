"""Benchmarks of the issues' targets, run by `manage.py bench` on data from `seed_bulk`.

Each benchmark returns a dict of figures; the command prints them as one JSON object.
Pages are fetched through the Django test client as full HTML, so every middleware,
query and template is in the measurement.
"""

from __future__ import annotations

from collections.abc import Callable

from msglog.devtools.bench import sending as bench_sending
from msglog.devtools.bench.batches import bench_batch_create, bench_batch_stop
from msglog.devtools.bench.exports import bench_exports
from msglog.devtools.bench.logs import bench_logs, bench_stats
from msglog.devtools.bench.retention import bench_retention
from msglog.devtools.bench.webhooks import bench_webhooks

BENCHMARKS: dict[str, Callable[[], dict]] = {
    "logs": bench_logs,
    "stats": bench_stats,
    "retention": bench_retention,
    "webhooks": bench_webhooks,
    "enqueue": bench_sending.bench_enqueue,
    "throughput": bench_sending.bench_throughput,
    "exports": bench_exports,
    "batch_stop": bench_batch_stop,
    "batch_create": bench_batch_create,
}
