"""The status rule: a message's status follows from the set of its events alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from msglog.rules.statuses import (
    ALSO_CALLED,
    FAILED_GROUP,
    PRECEDENCE,
    RETRYABLE,
    EventFact,
    Status,
    derive,
    display_words,
    matching_statuses,
)

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def event(status: str, minutes: int, code: str = "", message: str = "", key: str = "") -> EventFact:
    return EventFact(
        dedupe_key=key or f"{status}-{minutes}-{code}",
        status=status,
        occurred_at=T0 + timedelta(minutes=minutes),
        error_code=code,
        error_message=message,
    )


events_strategy = st.lists(
    st.builds(
        EventFact,
        dedupe_key=st.text(alphabet="abcdef", min_size=1, max_size=3),
        status=st.sampled_from([*list(Status), ""]),
        occurred_at=st.integers(0, 10_000).map(lambda m: T0 + timedelta(minutes=m)),
        error_code=st.sampled_from(["", "30003", "30005", "550"]),
        error_message=st.sampled_from(["", "Unreachable", "User unknown"]),
    ),
    max_size=12,
)


@given(events=events_strategy, data=st.data())
def test_status_does_not_depend_on_order_or_duplicates(events, data):
    shuffled = data.draw(st.permutations(events))
    duplicated = (
        shuffled + data.draw(st.lists(st.sampled_from(events), max_size=8)) if events else []
    )
    assert derive(shuffled) == derive(events)
    assert derive(duplicated) == derive(events)


@given(events=events_strategy)
def test_stage_timestamps_are_the_earliest_event_of_each_stage(events):
    distinct = [  # one report per key, as the database's unique constraint keeps them
        EventFact(str(i), e.status, e.occurred_at, e.error_code, e.error_message)
        for i, e in enumerate(events)
    ]
    derived = derive(distinct)
    for stage, statuses in [
        ("sent_at", {Status.SENT}),
        ("delivered_at", {Status.DELIVERED}),
        ("opened_at", {Status.OPENED}),
        ("clicked_at", {Status.CLICKED}),
        ("failed_at", FAILED_GROUP),
    ]:
        times = [e.occurred_at for e in distinct if e.status in statuses]
        assert getattr(derived, stage) == (min(times) if times else None)


def test_a_late_sent_never_overwrites_delivered():
    assert derive([event("delivered", 5), event("sent", 9)]).status == Status.DELIVERED


def test_opened_without_delivered_counts_as_delivered_and_more():
    derived = derive([event("sent", 1), event("opened", 30)])
    assert derived.status == Status.OPENED
    assert derived.opened_at == T0 + timedelta(minutes=30)
    assert derived.delivered_at is None  # no delivery report was received; we do not invent one


def test_bounced_after_delivered_is_bounced():
    derived = derive([event("sent", 0), event("delivered", 1), event("bounced", 5, "550")])
    assert derived.status == Status.BOUNCED
    assert derived.error_code == "550"


def test_delivered_after_bounced_is_still_bounced():
    derived = derive([event("sent", 0), event("bounced", 1, "550"), event("delivered", 5)])
    assert derived.status == Status.BOUNCED
    assert derived.delivered_at == T0 + timedelta(minutes=5)
    assert derived.failed_at == T0 + timedelta(minutes=1)


def test_multi_segment_sms_keeps_the_failed_segments_error_visible():
    derived = derive(
        [
            event("sent", 0),
            event("undelivered", 2, "30003", "Unreachable destination handset", key="seg1"),
            event("delivered", 3, key="seg2"),
        ]
    )
    assert derived.status == Status.DELIVERED
    assert derived.error_code == "30003"
    assert derived.error_message == "Unreachable destination handset"


def test_a_message_sent_despite_a_cancel_shows_what_really_happened():
    # A stop that committed after a worker had already claimed the message.
    assert derive([event("canceled", 0), event("sending", 1), event("sent", 2)]).status == "sent"


def test_a_provider_refusing_a_message_is_the_final_word_on_it():
    # Twilio 21211 (invalid number) or 21610 (STOP) answer the send itself: nothing went out.
    for refusal in ("invalid_recipient", "suppressed"):
        derived = derive([event("queued", 0), event("sending", 1), event(refusal, 2)])
        assert derived.status == refusal
        assert derive([event("sending", 1), event(refusal, 2), event("sent", 3)]).status == "sent"


def test_soft_bounce_events_do_not_move_the_status():
    soft = EventFact("soft", "", T0 + timedelta(minutes=3), "421", "Mailbox busy, retrying")
    derived = derive([event("sent", 0), soft])
    assert derived.status == Status.SENT
    assert derived.error_code == "421"  # the timeline still explains the delay


def test_no_events_keeps_the_initial_status():
    assert derive([], initial=Status.SCHEDULED).status == Status.SCHEDULED


def test_every_status_has_a_rank_and_other_products_words():
    assert set(PRECEDENCE) == set(Status) == set(ALSO_CALLED)


def test_failed_group_is_the_specs_list_and_restart_skips_hopeless_addresses():
    assert {
        "undelivered",
        "bounced",
        "failed",
        "invalid_recipient",
        "insufficient_credits",
        "channel_disabled",
        "suppressed",
    } == FAILED_GROUP
    assert "invalid_recipient" not in RETRYABLE and "suppressed" not in RETRYABLE


def test_a_users_own_word_finds_our_status():
    assert matching_statuses("Dropped") == {Status.SUPPRESSED}
    assert matching_statuses("InvalidPhoneNumber") == {Status.INVALID_RECIPIENT}
    assert Status.QUEUED in matching_statuses("pending")
    assert matching_statuses("nonsense-word") == set()
    assert display_words(Status.SUPPRESSED) == "Suppressed (Dropped, Unsubscribed)"
