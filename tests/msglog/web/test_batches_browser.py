"""Ada runs a batch in a real (headless) browser: upload, check, start, watch, stop, restart.

The workers' part (recording the rows, handing messages to the simulator) is done by the
test between her steps, with the same functions the tasks call, so the page is seen
updating by itself while the batch runs.
"""

from __future__ import annotations

import pytest
from django_scopes import scope, scopes_disabled

from msglog.models import Batch, Message
from msglog.rules.statuses import Status
from msglog.services import batches, delivery
from tests.browser import sign_in
from tests.factories import PASSWORD, TemplateFactory

pytestmark = pytest.mark.browser

CSV = "email,name\n" + "".join(
    [
        "cat@fail.example.com,Cat Cole\n",
        "dan@fail.example.com,Dan Dale\n",
        "bad-address,Broken Row\n",
        "ann@example.org,Ann Archer\n",
        "ann@example.org,Ann Twice\n",
        *(f"client{i}@example.org,Client {i}\n" for i in range(20)),
    ]
)


def send_some(batch: Batch, how_many: int) -> None:
    """What the workers do: record the rows and hand `how_many` queued messages over."""
    with scope(company=batch.company_id):
        batches.record_rows(batch.upload.pk)
        ids = list(
            Message.objects.filter(batch=batch, status=Status.QUEUED)
            .order_by("pk")
            .values_list("pk", flat=True)[:how_many]
        )
        delivery.deliver_many(batch.company_id, ids)


@pytest.mark.django_db(transaction=True)
def test_admin_uploads_starts_watches_stops_and_restarts(live_server, chromium, admin, acme):
    TemplateFactory(
        company=acme, channel="email", name="Newsletter", subject="Hi", text="Hi {{ first_name }}"
    )
    page = sign_in(chromium, live_server.url, admin.user.username, PASSWORD)
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("nav.mainnav >> text=Batches")
    page.click("text=New batch")
    page.fill("#id_name", "Spring newsletter")
    page.select_option("#id_template", label="Newsletter (Email)")
    page.set_input_files(
        "#id_csv_file", {"name": "clients.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    page.click("#check-recipients")

    # The check: 25 rows, 23 to send, an invalid address and a duplicate left out.
    page.wait_for_selector("#report")
    assert page.inner_text("#report-valid") == "23"
    assert page.inner_text("#report-invalid") == "1"
    assert page.inner_text("#report-duplicates") == "1"
    assert "bad-address" in page.inner_text("#report-problems")
    page.click("#start-batch")
    page.wait_for_selector("#batch-summary")
    with scopes_disabled():
        batch = Batch.objects.get()
    assert page.url.endswith(f"/batches/{batch.pk}/")

    # The workers get going: the figures move without a reload.
    send_some(batch, 2)  # the two failing ones come first in the file
    page.wait_for_function("document.querySelector('#batch-failed').innerText === '2'")
    send_some(batch, 5)
    page.wait_for_function("document.querySelector('#batch-sent').innerText === '7'")

    # Stop: the rest is canceled, and the page says nothing sent is recalled.
    page.click("#stop-batch")
    page.wait_for_selector(".stop-note")
    assert "16 unsent messages canceled" in page.inner_text(".flash")
    assert page.inner_text("#batch-state") == "Stopped"
    assert page.inner_text("#batch-canceled") == "16"
    page.click("nav.tabs a[data-tab=all]")
    page.fill("#id_q", "Canceled")
    page.wait_for_function("document.querySelector('#log-results').innerText.includes('Canceled')")

    # Restart: the confirmation explains who is left out, and why.
    page.goto(f"{live_server.url}/batches/{batch.pk}/")
    page.click("#restart-batch")
    assert "will send 2 messages" in page.inner_text("#restart-summary")
    assert "did not fail" in page.inner_text("#restart-left-out")
    page.click("#confirm-restart")
    page.wait_for_selector("#batch-summary")
    with scopes_disabled():
        restart = Batch.objects.get(restarted_from=batch)
    assert page.url.endswith(f"/batches/{restart.pk}/")
    assert "Restarted from" in page.inner_text("#batch-summary")
    send_some(restart, 10)
    with scopes_disabled():
        reached = sorted(Message.objects.filter(batch=restart).values_list("to_address", flat=True))
    assert reached == ["cat@fail.example.com", "dan@fail.example.com"]
    page.wait_for_function("document.querySelector('#batch-state').innerText === 'Finished'")

    # The Batches page lists both, with their progress.
    page.click("nav.mainnav >> text=Batches")
    rows = page.inner_text(".batch-table")
    assert "Spring newsletter (restart)" in rows and "Stopped" in rows
