"""Rate limits: a company's and a provider's messages per second, shared by every worker.

The buckets are the same in Redis (several machines) and in a locked file (embedded
mode, one machine): a second's worth goes at once, then takers wait their turn, and the
waits add up to exactly the configured pace.
"""

from __future__ import annotations

import pytest
import redis

from msglog.services import rate_limits
from msglog.services.rate_limits import Limit


@pytest.fixture(params=["redis", "file"])
def buckets(request, settings, tmp_path):
    if request.param == "redis":
        if not settings.REDIS_URL:
            pytest.skip("needs REDIS_URL")
        redis.Redis.from_url(settings.REDIS_URL).delete("msglog:rate:test:bucket")
    else:
        settings.REDIS_URL = ""
        settings.VAR_DIR = tmp_path
    return request.param


def test_a_seconds_burst_goes_at_once_then_takers_wait_their_turn(buckets):
    limit = Limit.per_second("test:bucket", 10)
    assert rate_limits.reserve(limit, 10) == 0  # the burst
    first = rate_limits.reserve(limit, 5)
    second = rate_limits.reserve(limit, 5)
    # Half a second for the first five, a whole one for the next: the pace is exact.
    assert 0.4 < first < 0.6
    assert 0.9 < second < 1.1


def test_limits_come_from_the_settings(settings):
    settings.RATE_LIMIT_COMPANY_PER_SECOND = "25"
    settings.RATE_LIMIT_TWILIO_PER_SECOND = "3"
    company, provider = rate_limits.limits_for(7, "twilio")
    assert (company.key, company.rate) == ("company:7", 25)
    assert (provider.key, provider.rate) == ("provider:twilio", 3)
    # Slices stay within a quarter second of the slowest bucket.
    assert rate_limits.slice_size([company, provider], 100) == 1
