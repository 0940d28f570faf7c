"""The simulator: an honest stand-in provider for both channels (the embedded default).

Outcomes are chosen by the address, so demos and tests can show every status on
purpose, and reports arrive after realistic delays through the same path real
providers' reports take (msglog.services.events).

SMS, by the number's last four digits:
    0000 undelivered, 30003 unreachable handset     0001 undelivered, 30006 landline
    0002 failed at send, 21614 not a mobile number  0003 busy once (429), then delivered
    0004 two segments: one undelivered (30003), one delivered
    0005 sent, and no report ever comes (polling finds it delivered)
    anything else: delivered

Email, by the domain:
    bounce.example.com  bounced, 550 5.1.1 user unknown
    defer.example.com   a soft bounce (421), then delivered
    open.example.com    delivered, then opened
    click.example.com   delivered, opened, clicked
    spam.example.com    delivered, then marked as spam
    fail.example.com    refused at send (554)
    busy.example.com    busy once (421 at connect), then delivered
    anything else: delivered; every third address (by a stable hash) also opens it
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from msglog.models import SimulatedSend
from msglog.rules.kinds import Channel
from msglog.rules.provider_interface import (
    Accepted,
    NotFound,
    Outgoing,
    PermanentError,
    ProviderError,
    ProviderReport,
    TransientError,
)
from msglog.rules.statuses import Status
from msglog.services import queue


@dataclass(frozen=True)
class Step:
    """One report the simulator will make: after `delay` seconds, this status."""

    delay: float
    status: str
    event: str = ""
    error_code: str = ""
    error_message: str = ""


def _stable_hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def plan(channel: str, address: str) -> list[Step]:
    """The reports the simulator makes for a message to `address`, in order."""
    if channel == Channel.SMS:
        ending = address[-4:]
        if ending == "0000":
            return [
                Step(
                    2, Status.UNDELIVERED, "undelivered", "30003", "Unreachable destination handset"
                )
            ]
        if ending == "0001":
            return [
                Step(
                    2, Status.UNDELIVERED, "undelivered", "30006", "Landline or unreachable carrier"
                )
            ]
        if ending == "0004":
            return [
                Step(
                    2,
                    Status.UNDELIVERED,
                    "undelivered",
                    "30003",
                    "Unreachable destination handset (segment 1 of 2)",
                ),
                Step(3, Status.DELIVERED, "delivered"),
            ]
        if ending == "0005":
            return []
        return [Step(2, Status.DELIVERED, "delivered")]
    domain = address.rpartition("@")[2].lower()
    if domain == "bounce.example.com":
        return [
            Step(
                2,
                Status.BOUNCED,
                "bounced",
                "550",
                f"550 5.1.1 <{address}>: Recipient address rejected: User unknown",
            )
        ]
    if domain == "defer.example.com":
        return [
            Step(1, "", "deferred", "421", "421 4.7.0 Try again later"),
            Step(4, Status.DELIVERED, "delivered"),
        ]
    if domain == "open.example.com":
        return [Step(2, Status.DELIVERED, "delivered"), Step(5, Status.OPENED, "opened")]
    if domain == "click.example.com":
        return [
            Step(2, Status.DELIVERED, "delivered"),
            Step(5, Status.OPENED, "opened"),
            Step(7, Status.CLICKED, "clicked"),
        ]
    if domain == "spam.example.com":
        return [Step(2, Status.DELIVERED, "delivered"), Step(6, Status.COMPLAINED, "complained")]
    steps = [Step(2, Status.DELIVERED, "delivered")]
    if _stable_hash(address) % 3 == 0:
        steps.append(Step(6, Status.OPENED, "opened"))
    return steps


class SimulatorProvider:
    """Both channels, with outcomes chosen by the address (see the module's docstring)."""

    name = "simulator"
    channels = frozenset({Channel.SMS.value, Channel.EMAIL.value})

    def __init__(self, channel: str):
        self.channel = channel
        # Accepted and not yet reported on: their reports are published once the send
        # service has recorded the acceptances (acceptance_recorded).
        self._unreported: list[tuple[Outgoing, Accepted]] = []

    def send(self, outgoing: Outgoing) -> Accepted:
        self._refuse_if_scripted(outgoing)
        record, answer = self._accept(outgoing)
        # Written before answering, as a real provider commits before it replies: a worker
        # killed after this line left a message the provider has, and lookup will say so.
        record.save()
        self._unreported.append((outgoing, answer))
        return answer

    def send_batch(self, outgoings: list[Outgoing]) -> list[Accepted | ProviderError]:
        """Hand many messages over in one request, as ESPs' batch APIs take them: each
        gets its own answer, and the accepted ones are recorded together before the
        answer (all of them, or none if the request never completes)."""
        answers: list[Accepted | ProviderError] = []
        records = []
        for outgoing in outgoings:
            try:
                self._refuse_if_scripted(outgoing)
            except ProviderError as error:
                answers.append(error)
                continue
            record, answer = self._accept(outgoing)
            records.append(record)
            answers.append(answer)
        SimulatedSend.objects.bulk_create(records)
        self._unreported += [
            (o, a) for o, a in zip(outgoings, answers, strict=True) if isinstance(a, Accepted)
        ]
        return answers

    def acceptance_recorded(self) -> None:
        """Report back on what was accepted, after realistic delays, as a provider's
        webhooks would: through the events queue, one task per company and delay carrying
        the reports of every message it concerns (named by our public id, which the
        provider was given)."""
        accepted, self._unreported = self._unreported, []
        due: dict[tuple[int, float], list] = {}
        for outgoing, answer in accepted:
            for delay, report in self.reports(answer.provider_message_id, outgoing.to):
                due.setdefault((outgoing.company_id, delay), []).append(
                    [outgoing.public_id, report.as_json()]
                )
        for (company_id, delay), items in due.items():
            queue.publish_on_commit(
                "msglog.tasks.apply_simulated_reports",
                company_id,
                items,
                countdown=delay,
                argsrepr=f"({company_id}, [{len(items)} reports])",
            )

    def _accept(self, outgoing: Outgoing) -> tuple[SimulatedSend, Accepted]:
        """The provider's record of an accepted message (not yet saved) and its answer."""
        provider_id = ("SM" if self.channel == Channel.SMS else "EM") + secrets.token_hex(16)
        record = SimulatedSend(
            provider_message_id=provider_id,
            public_id=outgoing.public_id,
            company_id=outgoing.company_id,
            channel=self.channel,
            to_address=outgoing.to,
        )
        answer = Accepted(
            provider_message_id=provider_id,
            status=Status.SENT,
            raw={"id": provider_id, "status": "accepted", "to": outgoing.to},
        )
        return record, answer

    def _refuse_if_scripted(self, outgoing: Outgoing) -> None:
        address = outgoing.to
        if self.channel == Channel.SMS and address.endswith("0002"):
            raise PermanentError(
                "The 'To' number is not a valid mobile number.",
                code="21614",
                status=Status.INVALID_RECIPIENT,
                raw={"code": 21614},
            )
        if self.channel == Channel.EMAIL and address.lower().endswith("@fail.example.com"):
            raise PermanentError("554 5.7.1 Message rejected", code="554", raw={"smtp_code": 554})
        busy = (
            address.endswith("0003")
            if self.channel == Channel.SMS
            else address.lower().endswith("@busy.example.com")
        )
        if busy and outgoing.metadata.get("attempt", 1) == 1:
            raise TransientError(
                "Too many requests; try again shortly.",
                code="20429" if self.channel == Channel.SMS else "421",
            )

    def lookup(self, provider_message_id: str, outgoing: Outgoing) -> ProviderReport | None:
        record = (
            SimulatedSend.objects.filter(provider_message_id=provider_message_id).first()
            if provider_message_id
            else SimulatedSend.objects.filter(public_id=outgoing.public_id).first()
        )
        if record is None:
            raise NotFound(outgoing.public_id)
        steps = plan(self.channel, record.to_address)
        final = [s for s in steps if s.status] or [Step(0, Status.DELIVERED, "delivered")]
        step = final[-1]
        return ProviderReport(
            provider_message_id=record.provider_message_id,
            status=step.status,
            occurred_at=record.accepted_at + timedelta(seconds=step.delay),
            event=step.event,
            error_code=step.error_code,
            error_message=step.error_message,
            raw={"id": record.provider_message_id, "status": step.event, "polled": True},
        )

    def reports(self, provider_message_id: str, address: str) -> list[tuple[float, ProviderReport]]:
        """The reports to deliver for an accepted message, each with its delay in seconds."""
        accepted_at = timezone.now()
        return [
            (
                step.delay,
                ProviderReport(
                    provider_message_id=provider_message_id,
                    status=step.status,
                    occurred_at=accepted_at + timedelta(seconds=step.delay),
                    event=step.event,
                    error_code=step.error_code,
                    error_message=step.error_message,
                    provider_event_id=f"{provider_message_id}-{n}",
                    raw={
                        "id": provider_message_id,
                        "event": step.event,
                        "n": n,
                        "error_code": step.error_code or None,
                    },
                ),
            )
            for n, step in enumerate(plan(self.channel, address))
        ]
