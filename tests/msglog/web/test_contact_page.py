"""The contact page: support checks why Jane says she gets nothing from Acme.

The story: Jane Doe has had four messages over two months; her email hard-bounced and
she texted STOP. Her neighbour Ken has his own messages, and Rival Corp has a contact
of its own. Support opens Jane's page and sees her history, newest first, and the two
red flags that explain her silence.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from msglog.models import Suppression
from tests.factories import ContactFactory, MessageFactory, SuppressionFactory


@pytest.fixture
def jane(acme):
    now = timezone.now()
    jane = ContactFactory(
        company=acme,
        name="Jane Doe",
        email="Jane.Doe@example.org",
        phone="+14155550123",
        external_ref="CRM-7781",
    )
    for address, days_ago, channel in [
        ("jane-newest@example.org", 0, "email"),
        ("+14155550123", 2, "sms"),
        ("jane-older@example.org", 9, "email"),
        ("jane-oldest@example.org", 60, "email"),  # beyond the Logs page's default month
    ]:
        MessageFactory(
            company=acme,
            contact=jane,
            channel=channel,
            to_address=address,
            created_at=now - timedelta(days=days_ago, minutes=5),
        )
    ken = ContactFactory(company=acme, name="Ken Other")
    MessageFactory(company=acme, contact=ken, to_address="ken@example.org")
    MessageFactory(company=acme, to_address="nobody@example.org")
    return jane


def url(contact) -> str:
    return f"/contacts/{contact.pk}/"


@pytest.mark.django_db
def test_the_history_lists_only_this_contacts_messages_newest_first(support, jane):
    response = support.client().get(url(jane))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Jane Doe" in page and "CRM-7781" in page and "+14155550123" in page
    history = page.split("Comms history", 1)[1]
    order = ["jane-newest@", "+14155550123</", "jane-older@", "jane-oldest@"]
    positions = [history.find(text) for text in order]
    assert -1 not in positions, positions
    assert positions == sorted(positions)
    assert "ken@example.org" not in page and "nobody@example.org" not in page


@pytest.mark.django_db
def test_the_logs_filters_narrow_the_history(support, jane):
    client = support.client()
    page = client.get(url(jane), {"channel": "sms"}).content.decode()
    assert "+14155550123</" in page
    assert "jane-newest@" not in page and "jane-oldest@" not in page

    page = client.get(url(jane), {"period": "7d"}).content.decode()
    assert "jane-newest@" in page and "jane-older@" not in page

    page = client.get(url(jane), {"tab": "sms", "q": ""}).content.decode()
    assert "+14155550123</" in page and "jane-oldest@" not in page
    assert "ken@example.org" not in page


@pytest.mark.django_db
def test_a_bounced_email_and_an_sms_opt_out_are_red_flags(support, acme, jane):
    SuppressionFactory(
        company=acme,
        channel="email",
        address="jane.doe@example.org",  # stored lowercased
        reason=Suppression.Reason.HARD_BOUNCE,
        note="550 5.1.1 user unknown",
    )
    SuppressionFactory(
        company=acme, channel="sms", address=jane.phone, reason=Suppression.Reason.SMS_STOP
    )
    page = support.client().get(url(jane)).content.decode()
    assert "Email bounced" in page and "Hard bounce" in page and "550 5.1.1 user unknown" in page
    assert "SMS opted out" in page and "SMS STOP" in page
    assert "No red flags" not in page


@pytest.mark.django_db
def test_flags_set_on_the_contact_alone_also_show(support, acme):
    contact = ContactFactory(company=acme, email_bounced=True, sms_opted_out=True)
    page = support.client().get(url(contact)).content.decode()
    assert "Email bounced" in page and "SMS opted out" in page


@pytest.mark.django_db
def test_a_contact_without_trouble_has_no_flags(support, acme, rival, jane):
    # Another company's suppression of the same address is not Acme's business.
    SuppressionFactory(company=rival, channel="email", address="jane.doe@example.org")
    page = support.client().get(url(jane)).content.decode()
    assert "No red flags" in page
    assert "Email bounced" not in page and "SMS opted out" not in page
    assert "the recipient asked" not in page.lower()


@pytest.mark.django_db
def test_another_companys_contact_is_not_found(admin, outsider, rival, jane):
    assert outsider.client().get(url(jane)).status_code == 404
    theirs = ContactFactory(company=rival, name="Rival person")
    assert admin.client().get(url(theirs)).status_code == 404
    assert admin.client().get("/contacts/999999/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["admin", "accountant", "viewer"])
def test_every_role_that_reads_the_log_sees_the_history(request, jane, persona):
    response = request.getfixturevalue(persona).client().get(url(jane))
    assert response.status_code == 200
    assert "jane-newest@" in response.content.decode()


@pytest.mark.django_db
def test_operators_see_any_companys_contact(operator, jane):
    client = operator.client()
    client.post("/switch-company/", {"company": "all"})
    page = client.get(url(jane)).content.decode()
    assert "jane-oldest@" in page and "ken@example.org" not in page
