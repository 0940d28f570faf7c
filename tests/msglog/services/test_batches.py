"""Batches: Ada (admin at Acme Clinics) sends a newsletter to a CSV of clients.

The story: she uploads a CSV with some bad rows and reads the check (an invalid
address, a duplicate, a suppressed one); she starts the batch and the workers record
and send it (here called directly, as the tasks do); the Batches page shows its
progress from the counters. She stops a second batch mid-way: nothing more is claimed,
every unsent message becomes canceled with an event, nothing sent is recalled. She
restarts the first batch: the new batch goes only to the recipients whose message
failed, and the confirmation says why the others are left out. Sam (support), Alex
(accountant) and Val (viewer) can look but not create, stop or restart.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from companies.models import AuditEntry
from msglog.models import Batch, BatchUpload, Message, SimulatedSend, StatusEvent
from msglog.queries import batch_figures
from msglog.rules.statuses import Status
from msglog.services import batch_counters, batches, delivery, sending, uploads
from msglog.web.forms import company_timezone
from tests.clock import ahead
from tests.factories import ContactFactory, SuppressionFactory, TemplateFactory

pytestmark = pytest.mark.django_db

CSV = """email,name,offer
ann@example.org,Ann Archer,10 %
bob@example.org,Bob Baker,15 %
not-an-email,Broken Row,5 %
ann@example.org,Ann Again,10 %
gone@example.org,Gone Away,5 %
cat@fail.example.com,Cat Cole,20 %
dan@fail.example.com,Dan Dale,20 %
eve@example.org,Eve Ellis,10 %
"""


@pytest.fixture
def newsletter(acme):
    template = TemplateFactory(
        company=acme,
        channel="email",
        category="marketing",
        message_type="marketing",
        name="Newsletter",
        subject="Spring offer for {{ first_name }}",
        text="Hello {{ first_name }}, {{ offer }} off this month.",
    )
    return template


@pytest.fixture
def gone(acme):
    return SuppressionFactory(company=acme, channel="email", address="gone@example.org")


def upload(client, template, data: str = CSV, **extra):
    return client.post(
        "/batches/new/",
        {
            "name": "Spring newsletter",
            "template": template.pk,
            "source": "csv",
            "csv_file": SimpleUploadedFile("clients.csv", data.encode(), "text/csv"),
            **extra,
        },
    )


def record_and_send(batch: Batch) -> None:
    """What the workers do: record the upload's rows, then send every queued message."""
    with scope(company=batch.company_id):
        batches.record_rows(batch.upload.pk)
        ids = list(
            Message.objects.filter(batch=batch, status=Status.QUEUED).values_list("pk", flat=True)
        )
        delivery.deliver_many(batch.company_id, ids)


def fresh(batch: Batch) -> Batch:
    with scopes_disabled():
        return Batch.objects.get(pk=batch.pk)


def statuses(batch: Batch) -> Counter:
    with scopes_disabled():
        return Counter(Message.objects.filter(batch=batch).values_list("status", flat=True))


def test_an_upload_is_checked_then_started_and_sent(admin, newsletter, gone):
    client = admin.client()
    response = upload(client, newsletter)
    assert response.status_code == 302
    report_page = client.get(response["Location"])
    html = report_page.content.decode()
    assert report_page.status_code == 200
    report = report_page.context["report"]
    assert (report.rows, report.valid) == (8, 5)
    assert (report.invalid, report.duplicates, report.suppressed) == (1, 1, 1)
    assert "not-an-email" in html and "Same address as line 2" in html
    assert "On the suppression list" in html
    with scopes_disabled():
        assert not Message.objects.exists(), "nothing is sent before Start"

    started = client.post(response["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    assert started["Location"] == f"/batches/{batch.pk}/"
    assert (batch.state, batch.planned_count, batch.created_by) == ("running", 5, admin.user)

    record_and_send(batch)
    batch = fresh(batch)
    assert statuses(batch) == {Status.SENT: 3, Status.FAILED: 2}
    assert (batch.total_count, batch.sent_count, batch.failed_count) == (5, 5, 2)
    assert batch.pending_count == 0 and batch.state == "finished" and batch.finished_at
    with scopes_disabled():
        ann = Message.objects.get(batch=batch, to_address="ann@example.org")
    assert ann.subject == "Spring offer for Ann" and "10 % off" in ann.body_text

    page = client.get("/batches/")
    assert page.status_code == 200
    assert "Spring newsletter" in page.content.decode() and "0/5" in page.content.decode()


def test_a_big_batch_is_written_by_copy_and_its_counters_add_up(admin, newsletter):
    # 250 recipients: recorded with COPY, claimed and accepted by the set-wise updates,
    # which move the batch counters exactly as a status change through the events does.
    client = admin.client()
    rows = "email\n" + "".join(f"client{i}@example.org\n" for i in range(240))
    rows += "".join(f"client{i}@fail.example.com\n" for i in range(10))
    client.post(upload(client, newsletter, data=rows)["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    assert sending.COPY_FROM <= 250
    record_and_send(batch)
    batch = fresh(batch)
    counted = batch_counters.counters_for(statuses(batch))
    assert statuses(batch) == {Status.SENT: 240, Status.FAILED: 10}
    assert {name: getattr(batch, name) for name in counted} == counted
    assert (batch.total_count, batch.sent_count, batch.pending_count) == (250, 250, 0)
    assert batch.state == "finished"


def test_a_batch_is_recorded_in_a_small_first_chunk_then_bigger_ones(admin, newsletter, acme):
    # Sending starts once the small first chunk commits; the rest go in bigger chunks.
    # Each chunk is one send, so its messages share one creation time.
    client = admin.client()
    rows = "email,name\n" + "".join(f"client{i}@example.org,Client {i}\n" for i in range(13))
    client.post(upload(client, newsletter, data=rows)["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    with scope(company=acme.pk):
        SuppressionFactory(company=acme, channel="email", address="client12@example.org")
        assert batches.record_rows(batch.upload.pk, chunk=2, later_chunk=5) == 13
        messages = Message.objects.filter(batch=batch).order_by("pk")
        sizes = Counter(messages.values_list("created_at", flat=True))
        assert [sizes[at] for at in sorted(sizes)] == [2, 5, 5, 1]
        # The addresses were checked at the upload: the send's other checks still apply
        # (the address suppressed since is recorded suppressed, not queued).
        assert statuses(batch) == {Status.QUEUED: 12, Status.SUPPRESSED: 1}
        assert messages.last().to_address == "client12@example.org"
        assert batches.record_rows(batch.upload.pk, chunk=2, later_chunk=5) == 0  # done once
    assert fresh(batch).total_count == 13


def test_confirming_counts_the_rows_once_and_a_double_submit_makes_one_batch(admin, acme):
    with scope(company=acme.pk):
        version = TemplateFactory(company=acme, channel="email").publish(admin.user)
        full = uploads.upload_csv(
            acme, name="Two", template_version=version, data="email\na@x.org\nb@x.org\n"
        )
        empty = uploads.upload_csv(acme, name="None", template_version=version, data="email\n")
        batch = batches.confirm(full, admin.user)
        assert batches.confirm(full, admin.user) == batch
        nobody = batches.confirm(empty, admin.user)
    assert (batch.planned_count, batch.state) == (2, "running")
    assert (nobody.planned_count, fresh(nobody).state) == (0, "finished")


def test_a_file_without_an_address_column_is_refused_with_the_reason(admin, newsletter):
    client = admin.client()
    response = upload(client, newsletter, data="name,offer\nAnn,10 %\n")
    page = client.get(response["Location"])
    assert "No email column" in page.content.decode()
    client.post(response["Location"])
    with scopes_disabled():
        assert not Batch.objects.exists()


def test_counters_follow_provider_reports(admin, newsletter):
    client = admin.client()
    client.post(upload(client, newsletter, data="email\nx@open.example.com\n")["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    record_and_send(batch)
    with scope(company=batch.company_id):
        message = Message.objects.get(batch=batch)
        from msglog.services.events import record_event

        record_event(message, Status.DELIVERED, key_parts=("d",))
        record_event(message, Status.OPENED, key_parts=("o",))
    batch = fresh(batch)
    assert (batch.sent_count, batch.delivered_count, batch.opened_count) == (1, 1, 1)
    assert batch_figures.figures(batch)["delivered_percent"] == 100


def test_stop_cancels_every_unsent_message_and_nothing_is_claimed_after(admin, newsletter):
    client = admin.client()
    rows = "email\n" + "".join(f"client{i}@example.org\n" for i in range(30))
    client.post(upload(client, newsletter, data=rows)["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    with scope(company=batch.company_id):
        batches.record_rows(batch.upload.pk)
        ids = list(Message.objects.filter(batch=batch).order_by("pk").values_list("pk", flat=True))
        delivery.deliver_many(batch.company_id, ids[:10])  # a worker got through a third
        claimed = delivery.claim_many(batch.company_id, ids[10:12])  # another holds two

    stopped = client.post(f"/batches/{batch.pk}/stop/", follow=True)
    html = stopped.content.decode()
    assert "18 unsent messages canceled" in html and "not recalled" in html
    batch = fresh(batch)
    assert batch.state == "stopped" and batch.stopped_by == admin.user
    assert statuses(batch) == {Status.SENT: 10, Status.CANCELED: 18, Status.SENDING: 2}

    with scope(company=batch.company_id):
        calls = SimulatedSend.objects.count()
        assert delivery.claim_many(batch.company_id, ids) == []
        assert delivery.deliver_many(batch.company_id, ids[12:]) == ["not ours"] * 18
        # The worker holding two claimed messages checks right before each provider call,
        # sees the stop and cancels them (what deliver_many does at that check).
        assert all(batches.is_stopped(m.batch_id) for m in claimed)
        batches.cancel_claimed(claimed)
        assert SimulatedSend.objects.count() == calls
        canceled = StatusEvent.objects.filter(message__batch=batch, status=Status.CANCELED)
        assert canceled.count() == 20
    batch = fresh(batch)
    assert statuses(batch) == {Status.SENT: 10, Status.CANCELED: 20}
    assert (batch.canceled_count, batch.pending_count, batch.sent_count) == (20, 0, 10)
    with scopes_disabled():
        entry = AuditEntry.objects.get(action=AuditEntry.Action.BATCH_STOPPED)
    assert entry.actor == admin.user and entry.details["canceled"] == 18
    # Stopping twice changes nothing.
    with scope(company=batch.company_id):
        assert not batches.stop(batch, admin.user).stopped


def test_a_worker_holding_claimed_messages_cancels_them_after_a_stop(admin, newsletter):
    client = admin.client()
    client.post(
        upload(client, newsletter, data="email\na@example.org\nb@example.org\n")["Location"]
    )
    with scopes_disabled():
        batch = Batch.objects.get()
    with scope(company=batch.company_id):
        batches.record_rows(batch.upload.pk)
        ids = list(Message.objects.filter(batch=batch).values_list("pk", flat=True))
        Batch.objects.filter(pk=batch.pk).update(state=Batch.State.STOPPED)  # stop commits
        # deliver_many's claim refuses them: the claim's WHERE checks the batch.
        assert delivery.deliver_many(batch.company_id, ids) == ["not ours", "not ours"]
        assert SimulatedSend.objects.count() == 0


def test_restart_sends_only_to_the_failed_ones_worth_retrying(admin, newsletter, acme):
    client = admin.client()
    moved = ContactFactory(company=acme, name="Moe Moved", email="moe@new.example.org")
    rows = "email,name\nann@example.org,Ann\ncat@fail.example.com,Cat\nbad-address,Bad\n"
    client.post(upload(client, newsletter, data=rows)["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    record_and_send(batch)
    # Moe's old address was suppressed when the batch went out; his contact has a new one.
    with scope(company=acme.pk):
        old = Message.objects.get(batch=batch, to_address="ann@example.org")
        suppressed = Message.objects.create(
            company=acme,
            channel="email",
            to_address="moe@old.example.org",
            to_name="Moe Moved",
            contact=moved,
            category="marketing",
            message_type="marketing",
            status=Status.SUPPRESSED,
            batch=batch,
        )
        Batch.objects.filter(pk=batch.pk).update(total_count=3, failed_count=2)
    assert old.status == Status.SENT and suppressed.pk
    batch = fresh(batch)

    confirm_page = client.get(f"/batches/{batch.pk}/restart/")
    plan = confirm_page.context["plan"]
    assert sorted(r[0] for r in plan.recipients) == ["cat@fail.example.com", "moe@new.example.org"]
    assert plan.left_out == {"did not fail (delivered, sent, pending or canceled)": 1}
    assert "will send <strong>2</strong> messages" in confirm_page.content.decode()

    restarted = client.post(f"/batches/{batch.pk}/restart/")
    with scopes_disabled():
        new = Batch.objects.get(restarted_from=batch)
    assert restarted["Location"] == f"/batches/{new.pk}/"
    record_and_send(new)
    with scopes_disabled():
        sent_to = sorted(Message.objects.filter(batch=new).values_list("to_address", flat=True))
        assert AuditEntry.objects.filter(action=AuditEntry.Action.BATCH_RESTARTED).count() == 1
    assert sent_to == ["cat@fail.example.com", "moe@new.example.org"]

    detail = client.get(f"/batches/{batch.pk}/").content.decode()
    assert f'href="/batches/{new.pk}/"' in detail and "Restarted as" in detail
    new_detail = client.get(f"/batches/{new.pk}/").content.decode()
    assert f'href="/batches/{batch.pk}/"' in new_detail and "Restarted from" in new_detail


def test_invalid_addresses_are_never_retried(admin, newsletter, acme):
    with scope(company=acme.pk):
        batch = Batch.objects.create(
            company=acme, name="Old", channel="email", state=Batch.State.FINISHED
        )
        Message.objects.create(
            company=acme,
            channel="email",
            to_address="nope",
            category="marketing",
            message_type="marketing",
            status=Status.INVALID_RECIPIENT,
            batch=batch,
        )
        Batch.objects.filter(pk=batch.pk).update(total_count=1, failed_count=1)
        plan = batches.restart_plan(fresh(batch))
    assert plan.count == 0
    assert plan.left_out == {"invalid address (unchanged since)": 1}


def test_batch_detail_has_successful_and_failed_tabs(admin, newsletter):
    client = admin.client()
    rows = "email\nann@example.org\ncat@fail.example.com\n"
    client.post(upload(client, newsletter, data=rows)["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    record_and_send(batch)
    with scope(company=batch.company_id):
        from msglog.services.events import record_event

        record_event(
            Message.objects.get(to_address="ann@example.org"), Status.DELIVERED, key_parts=("d",)
        )
    url = f"/batches/{batch.pk}/"
    successful = client.get(url, {"tab": "successful"}).content.decode()
    assert "ann@example.org" in successful and "cat@fail.example.com" not in successful
    failed = client.get(url, {"tab": "failed"}).content.decode()
    assert "cat@fail.example.com" in failed and "ann@example.org" not in failed
    everything = client.get(url).content.decode()
    assert "ann@example.org" in everything and "cat@fail.example.com" in everything
    assert "Successful" in everything and "Timeline" in everything
    # The same filters as the Logs, and a refresh of the figures alone.
    assert client.get(url, {"q": "ann"}).status_code == 200
    part = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="batch-summary")
    assert part.content.decode().lstrip().startswith('<section id="batch-summary"')


def test_a_batch_from_contacts(admin, newsletter, acme):
    ContactFactory(company=acme, name="Ann Archer", email="ann@example.org")
    ContactFactory(company=acme, name="Ben Bold", email="")
    ContactFactory(company=acme, name="Opted Out", email="out@example.org", email_bounced=True)
    client = admin.client()
    response = client.post(
        "/batches/new/",
        {"name": "To everyone", "template": newsletter.pk, "source": "contacts"},
    )
    report = client.get(response["Location"]).context["report"]
    assert (report.rows, report.valid, report.invalid) == (3, 2, 1)
    client.post(response["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    record_and_send(batch)
    with scopes_disabled():
        found = {m.to_address: (m.status, m.contact.name) for m in Message.objects.all()}
    assert found == {
        "ann@example.org": (Status.SENT, "Ann Archer"),
        "out@example.org": (Status.SUPPRESSED, "Opted Out"),
    }


def test_a_scheduled_batch_waits_for_its_time(admin, newsletter):
    client = admin.client()
    next_month = ahead(days=30)
    response = upload(
        client,
        newsletter,
        data="email\nann@example.org\n",
        scheduled_for=timezone.localtime(next_month, company_timezone(newsletter.company)).strftime(
            "%Y-%m-%dT%H:%M"
        ),
    )
    client.post(response["Location"])
    with scopes_disabled():
        batch = Batch.objects.get()
    assert batch.state == "scheduled" and batch.scheduled_for == next_month.replace(second=0)
    with scope(company=batch.company_id):
        batches.record_rows(batch.upload.pk)
    assert statuses(batch) == {Status.SCHEDULED: 1}
    assert "Scheduled" in client.get("/batches/").content.decode()


@pytest.mark.parametrize("persona", ["support", "accountant", "viewer"])
def test_only_admins_create_stop_and_restart(persona, request, newsletter, acme):
    person = request.getfixturevalue(persona)
    with scope(company=acme.pk):
        batch = Batch.objects.create(company=acme, name="Running", channel="email")
    client = person.client()
    assert client.get("/batches/").status_code == 200
    assert client.get(f"/batches/{batch.pk}/").status_code == 200
    assert "Stop batch" not in client.get(f"/batches/{batch.pk}/").content.decode()
    assert client.get("/batches/new/").status_code == 403
    assert upload(client, newsletter).status_code == 403
    assert client.post(f"/batches/{batch.pk}/stop/").status_code == 403
    assert client.get(f"/batches/{batch.pk}/restart/").status_code == 403
    assert fresh(batch).state == "running"
    with scopes_disabled():
        assert not BatchUpload.objects.exists()
