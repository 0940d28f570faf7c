"""A company tracks the email it sends over SMTP: opens and clicks come back to us."""

from __future__ import annotations

import re

import pytest
from django.core import signing
from django_scopes import scope

from msglog.models import InboundReport
from msglog.services import inbound_reports
from msglog.services.delivery import outgoing_for
from msglog.services.tracking import token_for
from tests.factories import CompanyFactory, MessageFactory

# The providers sign with these secrets, over the canonical URL.
pytestmark = pytest.mark.usefixtures("webhook_settings")

HTML = (
    "<html><body><p>Hello Ann,</p>"
    '<p><a href="https://acme.test/appointments/42?x=1&amp;y=2">See your appointment</a></p>'
    "<p><a href='https://acme.test/cancel'>Cancel</a> or "
    '<a href="https://acme.test/appointments/42?x=1&amp;y=2">open it again</a></p>'
    '<p><a href="mailto:help@acme.test">Write to us</a></p></body></html>'
)


@pytest.fixture
def tracked_email(db):
    company = CompanyFactory(tracking_enabled=True)
    return MessageFactory(
        company=company, channel="email", provider="smtp", status="sent", body_html=HTML
    )


def sent_html(message) -> str:
    with scope(company=message.company_id):
        return outgoing_for(message, 1).html


def tracked_links(html: str) -> list[str]:
    return re.findall(
        r'href=["\'](https://msglog\.example\.com/webhooks/track/click/[^"\']+)', html
    )


def path_of(url: str) -> str:
    return url.removeprefix("https://msglog.example.com")


@pytest.mark.django_db
def test_links_and_an_open_pixel_are_added_as_the_email_is_handed_over(tracked_email):
    html = sent_html(tracked_email)
    assert "https://acme.test/" not in html
    assert "mailto:help@acme.test" in html
    links = tracked_links(html)
    assert len(links) == 3 and links[0] == links[2]  # one token per distinct link
    assert html.count("/webhooks/track/open/") == 1
    assert html.index("/webhooks/track/open/") < html.index("</body>")
    assert sent_html(tracked_email) == html  # deterministic: stored body + rule = what was sent
    assert tracked_email.body_html == HTML


@pytest.mark.django_db
def test_without_tracking_the_html_goes_out_as_written(db):
    message = MessageFactory(channel="email", provider="smtp", body_html=HTML)
    assert sent_html(message) == HTML
    esp = MessageFactory(
        company=CompanyFactory(tracking_enabled=True), provider="anymail", body_html=HTML
    )
    assert sent_html(esp) == HTML  # ESPs track opens and clicks themselves


@pytest.mark.django_db
def test_an_open_and_a_click_are_proof_of_delivery(client, tracked_email):
    html = sent_html(tracked_email)
    pixel = re.search(r'src="([^"]+/webhooks/track/open/[^"]+)"', html).group(1)
    response = client.get(path_of(pixel))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    client.get(path_of(pixel))  # the mail client loads it again
    inbound_reports.apply_all()
    with scope(company=tracked_email.company_id):
        tracked_email.refresh_from_db()
    assert tracked_email.status == "opened"
    assert tracked_email.opened_at is not None

    cancel = tracked_links(html)[1]
    response = client.get(path_of(cancel))
    assert response.status_code == 302
    assert response["Location"] == "https://acme.test/cancel"
    first = tracked_links(html)[0]
    assert client.get(path_of(first))["Location"] == "https://acme.test/appointments/42?x=1&y=2"
    inbound_reports.apply_all()
    with scope(company=tracked_email.company_id):
        tracked_email.refresh_from_db()
    assert tracked_email.status == "clicked"
    assert InboundReport.objects.filter(event="opened").count() == 1
    assert InboundReport.objects.filter(event="clicked").count() == 2


@pytest.mark.django_db
def test_the_redirect_only_goes_to_the_messages_own_links(client, tracked_email):
    link = tracked_links(sent_html(tracked_email))[1]
    token = link.rstrip("/").rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/webhooks/track/click/{tampered}/").status_code == 404
    # Even a correctly signed token cannot name a link the message does not have.
    beyond = token_for(tracked_email.public_id, 7)
    assert client.get(f"/webhooks/track/click/{beyond}/").status_code == 404
    # A token someone signed with another key (a guess) is refused.
    forged = signing.Signer(key="guess", salt="msglog.webhooks.tracking").sign_object(
        [tracked_email.public_id, 0]
    )
    assert client.get(f"/webhooks/track/click/{forged}/").status_code == 404
    assert client.get(f"/webhooks/track/open/{forged}/").status_code == 404
    assert InboundReport.objects.count() == 0
