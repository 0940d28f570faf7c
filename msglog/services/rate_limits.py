"""Messages per second, per company and per provider, across every worker.

Each limit is a token bucket: `rate` tokens a second, holding at most `burst`. A worker
reserves tokens for a slice of a chunk before claiming it and sleeps for as long as the
reservation says, so a 100,000-recipient batch reaches its provider at the configured
pace however many workers share it. Reservations may go into debt: the next taker then
waits longer, which keeps the long-run rate exact and the order fair.

The buckets live in Redis (one atomic script, Redis's own clock), shared by workers on
any machine. Without Redis (embedded mode) they live in a file under the var folder,
updated under an exclusive file lock: correct for the worker processes of one machine.

Settings (environment): ``RATE_LIMIT_COMPANY_PER_SECOND`` (default 1000),
``RATE_LIMIT_PROVIDER_PER_SECOND`` (a default for every provider) and
``RATE_LIMIT_<PROVIDER>_PER_SECOND`` (e.g. ``RATE_LIMIT_TWILIO_PER_SECOND``).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from django.conf import settings

from msglog.models import Message
from msglog.rules.statuses import Status
from msglog.services.batches import NOT_STOPPED_SQL

if TYPE_CHECKING:
    from redis.commands.core import Script

DEFAULT_COMPANY_RATE = 1000.0
DEFAULT_PROVIDER_RATES = {"simulator": 2000.0, "twilio": 100.0, "smtp": 50.0}
DEFAULT_PROVIDER_RATE = 200.0
# A slice is at most this share of a second's tokens, so bursts stay small.
SLICE_SECONDS = 0.25

BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


@dataclass(frozen=True)
class Limit:
    key: str
    rate: float  # tokens a second
    burst: float  # most tokens held

    @classmethod
    def per_second(cls, key: str, rate: float) -> Limit:
        return cls(key=key, rate=rate, burst=max(1.0, rate))


def _env_rate(name: str, default: float) -> float:
    value = getattr(settings, name, None) or os.environ.get(name, "")
    try:
        return float(value) if value not in ("", None) else default
    except ValueError:
        return default


def limits_for(company_id: int, provider: str) -> list[Limit]:
    """The buckets a send of this company through this provider draws from."""
    company_rate = _env_rate("RATE_LIMIT_COMPANY_PER_SECOND", DEFAULT_COMPANY_RATE)
    provider_default = _env_rate(
        "RATE_LIMIT_PROVIDER_PER_SECOND",
        DEFAULT_PROVIDER_RATES.get(provider, DEFAULT_PROVIDER_RATE),
    )
    provider_rate = _env_rate(f"RATE_LIMIT_{provider.upper()}_PER_SECOND", provider_default)
    return [
        Limit.per_second(f"company:{company_id}", company_rate),
        Limit.per_second(f"provider:{provider}", provider_rate),
    ]


# --- Buckets ------------------------------------------------------------------------------


@functools.cache
def _redis() -> tuple[redis.Redis, Script]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return client, client.register_script(BUCKET_SCRIPT)


def _reserve_redis(limit: Limit, tokens: float) -> float:
    _, script = _redis()
    wait = script(keys=[f"msglog:rate:{limit.key}"], args=[limit.rate, limit.burst, tokens])
    return float(wait)


def _bucket_file(limit: Limit) -> Path:
    folder = Path(getattr(settings, "VAR_DIR", "var")) / "rate_limits"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (limit.key.replace(":", "-").replace("/", "_") + ".json")


def _reserve_file(limit: Limit, tokens: float) -> float:
    path = _bucket_file(limit)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        handle.seek(0)
        try:
            state = json.loads(handle.read() or "{}")
        except ValueError:
            state = {}
        now = time.time()
        level = min(
            limit.burst,
            state.get("tokens", limit.burst) + max(0.0, now - state.get("at", now)) * limit.rate,
        )
        level -= tokens
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"tokens": level, "at": now}))
    return 0.0 if level >= 0 else -level / limit.rate


def reserve(limit: Limit, tokens: float) -> float:
    """Take `tokens` from the bucket; returns the seconds to wait before using them."""
    if settings.REDIS_URL:
        return _reserve_redis(limit, tokens)
    return _reserve_file(limit, tokens)


def acquire(limits: Sequence[Limit], tokens: int) -> float:
    """Take `tokens` from every bucket and wait until all of them allow it."""
    if tokens <= 0:
        return 0.0
    wait = max(reserve(limit, tokens) for limit in limits)
    if wait > 0:
        time.sleep(wait)
    return wait


def slice_size(limits: Sequence[Limit], most: int) -> int:
    slowest = min(limit.rate for limit in limits)
    return max(1, min(most, int(slowest * SLICE_SECONDS)))


def paced(company_id: int, provider: str, message_ids: Sequence[int]) -> Iterator[list[int]]:
    """Slices of a chunk's messages, each yielded once the rate limits allow it.

    Only messages still waiting for a worker take tokens: a chunk whose batch was
    stopped, or that another worker already sent, costs no time.
    """

    limits = limits_for(company_id, provider)
    size = slice_size(limits, len(message_ids) or 1)
    for start in range(0, len(message_ids), size):
        part = list(message_ids[start : start + size])
        waiting = (
            Message.objects.filter(pk__in=part, status=Status.QUEUED)
            .extra(where=[NOT_STOPPED_SQL])  # noqa: S610 — a constant clause, no user input
            .count()
        )
        if not waiting:
            continue
        acquire(limits, waiting)
        yield part
