"""The message detail: a support person opens a message and learns what happened to it.

The story: Pat's appointment email bounced. Sam (support) opens it from the Logs, as a
panel and as its own page, and sees the content as sent, every report with the
provider's raw answer, and the error in plain words with where to fix it. Alex (the
accountant) sees the same statuses and explanation but never the content. Otto, from
another company, learns nothing at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType

import factory
import pytest
from django.http import HttpResponse
from django.urls import include, path
from django_scopes import scopes_disabled

from companies.models import AuditEntry
from msglog.services.events import record_event
from msglog.web import urls as web_urls
from templates_app.models import MessageTemplateVersion
from tests.factories import (
    BatchFactory,
    ContactFactory,
    MessageFactory,
    ScopelessFactory,
    StatusEventFactory,
    SuppressionFactory,
    TemplateFactory,
)

QUEUED_AT = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST)


class TemplateVersionFactory(ScopelessFactory):
    class Meta:
        model = MessageTemplateVersion

    template = factory.SubFactory(TemplateFactory)
    company = factory.SelfAttribute("template.company")
    number = 1
    subject = factory.SelfAttribute("template.subject")
    text = factory.SelfAttribute("template.text")


# The detail links to the contact page only when its route exists. These tests pick the
# URL configuration: without that route, and with it (a stand-in if it is not built yet).
def _stand_in(request, contact_id):
    return HttpResponse("contact")


def _urlconf(*, with_contacts: bool) -> ModuleType:
    pages = [p for p in web_urls.urlpatterns if getattr(p, "name", "") != "contact-detail"]
    patterns = [*pages, path("", include("companies.urls"))]
    if with_contacts:
        patterns.append(path("contacts/<int:contact_id>/", _stand_in, name="contact-detail"))
    urlconf = ModuleType(f"urls_with_contacts_{with_contacts}")
    urlconf.urlpatterns = patterns
    return urlconf


@pytest.fixture
def bounced_email(acme):
    """Pat's confirmation: sent, then bounced by the recipient's server as user unknown."""
    acme.timezone = "America/New_York"
    acme.save()
    pat = ContactFactory(company=acme, name="Pat Jones", email="pat@exmaple.org")
    template = TemplateFactory(company=acme, name="Appointment confirmation")
    version = TemplateVersionFactory(template=template, number=2)
    batch = BatchFactory(company=acme, name="March confirmations")
    message = MessageFactory(
        company=acme,
        contact=pat,
        to_name="Pat Jones",
        to_address="pat@exmaple.org",
        template=template,
        template_version=version,
        batch=batch,
        provider="smtp",
        provider_message_id="<abc123@mail.acme.test>",
        subject="Your appointment on Friday",
        body_text="Hello Pat, see you on Friday at 10:00.",
        body_html=(
            "<p>Hello <b>Pat</b>, see you on Friday.</p>"
            "<script>steal(document.cookie)</script>"
            '<img src="https://cdn.acme.test/logo.png" onerror="steal()">'
        ),
        created_at=QUEUED_AT,
    )
    # Recorded out of order, as providers report: the timeline must still read in order.
    bounce = StatusEventFactory(
        message=message,
        status="bounced",
        source="smtp",
        occurred_at=QUEUED_AT + timedelta(minutes=2),
        error_code="550",
        error_message="5.1.1 <pat@exmaple.org>: Recipient address rejected: User unknown",
        raw_payload={"smtp-response": "550 5.1.1 User unknown", "recipient": "pat@exmaple.org"},
    )
    StatusEventFactory(
        message=message,
        status="sent",
        source="smtp",
        occurred_at=QUEUED_AT + timedelta(minutes=1),
        raw_payload={"queued-as": "4Xyz12"},
    )
    with scopes_disabled():
        message.status = "bounced"
        message.sent_at = QUEUED_AT + timedelta(minutes=1)
        message.failed_at = bounce.occurred_at
        message.error_code = bounce.error_code
        message.error_message = bounce.error_message
        message.save()
    return message


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.mark.django_db
def test_support_sees_what_happened_and_why(support, bounced_email):
    html = page(support.client().get(bounced_email.get_absolute_url()))

    assert "Pat Jones" in html and "pat@exmaple.org" in html
    assert "Bounced" in html and "The recipient&#x27;s server rejected it." in html
    # The error in plain words, with the fix
    assert "Mailbox does not exist" in html and "550 5.1.1" in html
    assert "Correct the email address on the contact" in html
    # Where it came from
    assert "Appointment confirmation" in html and "version 2" in html
    assert "March confirmations" in html
    # Content as sent: subject and text; the HTML only through the isolated frame
    assert "Your appointment on Friday" in html
    assert "Hello Pat, see you on Friday at 10:00." in html
    assert f'src="/messages/{bounced_email.public_id}/content/"' in html
    assert "steal(" not in html


@pytest.mark.django_db
def test_times_are_in_the_companys_zone_with_utc_on_hover(support, bounced_email):
    html = page(support.client().get(bounced_email.get_absolute_url()))
    assert "Times in America/New_York" in html
    assert 'title="2025-03-03 15:00:00 UTC">2025-03-03 10:00:00 EST</time>' in html  # queued
    assert "2025-03-03 10:01:00 EST" in html  # sent
    assert "2025-03-03 10:02:00 EST" in html  # failed (the bounce)


@pytest.mark.django_db
def test_the_timeline_reads_in_order_with_each_raw_report(support, bounced_email):
    html = page(support.client().get(bounced_email.get_absolute_url()))
    timeline = html[html.index('class="timeline"') :]
    assert timeline.index("Sent") < timeline.index("Bounced")
    assert timeline.count('<details class="raw-report">') == 2
    # Pretty-printed JSON, keys sorted, escaped
    assert (
        "{\n  &quot;recipient&quot;: &quot;pat@exmaple.org&quot;,\n  &quot;smtp-response&quot;"
        in (timeline)
    )
    assert "from SMTP" in timeline


@pytest.mark.django_db
def test_the_panel_is_the_detail_alone_with_a_close_button(support, bounced_email):
    url = bounced_email.get_absolute_url()
    response = support.client().get(url, HTTP_HX_REQUEST="true")
    html = page(response)

    assert "<html" not in html and "← Logs" not in html
    assert '<button type="button" class="panel-close"' in html
    assert "getElementById(&#x27;panel&#x27;)" not in html  # the handler is not escaped away
    assert "getElementById('panel')" in html and "replaceChildren()" in html
    assert f'<a class="open-as-page" href="{url}">Open as page</a>' in html
    assert "Mailbox does not exist" in html
    assert "HX-Request" in response["Vary"]

    full = page(support.client().get(url))
    assert "<html" in full and "panel-close" not in full
    # A boosted link or a history restore is a page visit, not the panel.
    boosted = page(support.client().get(url, HTTP_HX_REQUEST="true", HTTP_HX_BOOSTED="true"))
    assert "<html" in boosted and "panel-close" not in boosted


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["accountant", "viewer"])
def test_roles_without_content_see_statuses_but_no_content(request, persona, bounced_email):
    reader = request.getfixturevalue(persona)
    for htmx in ({}, {"HTTP_HX_REQUEST": "true"}):
        html = page(reader.client().get(bounced_email.get_absolute_url(), **htmx))

        assert "Bounced" in html and "Mailbox does not exist" in html
        assert "2025-03-03 10:02:00 EST" in html
        assert "Your appointment on Friday" not in html
        assert "see you on Friday" not in html
        assert "smtp-response" not in html and "raw-report" not in html
        assert "/content/" not in html
        assert "Your role does not include reading message content." in html


@pytest.mark.django_db
def test_the_content_url_serves_sanitized_html_in_a_locked_box(support, bounced_email):
    response = support.client().get(f"/messages/{bounced_email.public_id}/content/")
    html = page(response)

    assert "Hello <b>Pat</b>, see you on Friday." in html
    assert "<script" not in html and "steal(" not in html and "onerror" not in html
    assert '<img src="https://cdn.acme.test/logo.png">' in html
    policy = response["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "sandbox" in policy and "frame-ancestors 'self'" in policy
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_reading_an_email_loads_no_remote_image_unless_asked(support, bounced_email):
    """A tracking pixel loaded from the log would record an open the recipient never did."""
    url = f"/messages/{bounced_email.public_id}/content/"
    policy = support.client().get(url)["Content-Security-Policy"]
    assert "img-src data:;" in policy and "https:" not in policy
    asked = support.client().get(url, {"images": "remote"})["Content-Security-Policy"]
    assert "img-src data: https:" in asked
    assert "Load remote images" in page(support.client().get(bounced_email.get_absolute_url()))


@pytest.mark.django_db
def test_the_detail_frames_the_html_without_scripts_or_same_origin(support, bounced_email):
    html = page(support.client().get(bounced_email.get_absolute_url()))
    frame = html[html.index("<iframe") : html.index("</iframe>")]
    assert 'sandbox=""' in frame
    assert "allow-scripts" not in frame and "allow-same-origin" not in frame
    # Every other page stays unframeable.
    assert support.client().get(bounced_email.get_absolute_url())["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_another_companys_message_does_not_exist(outsider, bounced_email):
    client = outsider.client()
    assert client.get(bounced_email.get_absolute_url()).status_code == 404
    assert client.get(f"/messages/{bounced_email.public_id}/content/").status_code == 404
    assert client.get("/messages/no-such-id/").status_code == 404


@pytest.mark.django_db
def test_the_accountant_is_told_why_the_content_is_closed(accountant, bounced_email):
    response = accountant.client().get(f"/messages/{bounced_email.public_id}/content/")
    assert response.status_code == 403
    assert response.content.decode() == "Your role does not include reading message content."


@pytest.mark.django_db
def test_the_operator_sees_any_company_s_message(operator, bounced_email):
    html = page(operator.client().get(bounced_email.get_absolute_url()))
    assert "Acme Clinics" in html and "Your appointment on Friday" in html


@pytest.mark.django_db
def test_every_read_of_content_is_recorded(support, accountant, bounced_email):
    support.client().get(bounced_email.get_absolute_url())
    support.client().get(f"/messages/{bounced_email.public_id}/content/")
    accountant.client().get(bounced_email.get_absolute_url())

    with scopes_disabled():
        reads = list(
            AuditEntry.objects.filter(action=AuditEntry.Action.CONTENT_VIEWED)
            .order_by("id")
            .values_list("actor_id", "company_id", "details")
        )
    public_id = str(bounced_email.public_id)
    assert reads == [
        (support.user.pk, bounced_email.company_id, {"message": public_id, "part": "detail"}),
        (support.user.pk, bounced_email.company_id, {"message": public_id, "part": "html"}),
    ]


@pytest.mark.django_db
def test_a_delivered_multi_segment_sms_keeps_its_failed_segments_error(support, acme):
    message = MessageFactory(
        company=acme,
        channel="sms",
        provider="twilio",
        to_address="+14155550100",
        body_text="Ihr Termin ist am Freitag um 10:00. Bis bald! 😊 " * 2,
        segments=3,
        encoding="UCS-2",
        credits=3,
        subject="",
    )
    with scopes_disabled():
        record_event(message, "sent", source="twilio")
        record_event(
            message,
            "undelivered",
            source="twilio",
            error_code="30003",
            raw_payload={"MessageStatus": "undelivered", "ErrorCode": "30003"},
        )
        record_event(message, "delivered", source="twilio", raw_payload={"MessageStatus": "ok"})

    html = page(support.client().get(message.get_absolute_url()))

    assert '<span class="badge status-delivered">Delivered</span>' in html
    assert "Delivered, with an error on the way" in html
    assert "Unreachable handset" in html and "30003" in html
    assert "3 segments · UCS-2" in html and "3 credits" in html
    assert "Bis bald! 😊" in html  # the text, as plain text


@pytest.mark.django_db
def test_sms_text_is_shown_as_text_never_as_markup(support, acme):
    message = MessageFactory(company=acme, channel="sms", body_text="<b>Hi</b> & bye", segments=1)
    html = page(support.client().get(message.get_absolute_url()))
    assert "&lt;b&gt;Hi&lt;/b&gt; &amp; bye" in html and "<b>Hi</b>" not in html
    assert "<iframe" not in html


@pytest.mark.django_db
def test_never_sent_for_lack_of_credits_says_to_top_up(support, acme):
    message = MessageFactory(company=acme, channel="sms", status="insufficient_credits")
    html = page(support.client().get(message.get_absolute_url()))
    assert "Why it was never sent" in html
    assert "tops up SMS credits in Company settings" in html


@pytest.mark.django_db
def test_a_suppressed_message_says_why_the_address_is_on_the_list(support, acme):
    SuppressionFactory(company=acme, address="gone@example.org", reason="sms_stop")
    message = MessageFactory(company=acme, to_address="gone@example.org", status="suppressed")
    html = page(support.client().get(message.get_absolute_url()))
    assert "on the company&#x27;s suppression list" in html and "Why: SMS STOP." in html


@pytest.mark.django_db
def test_without_a_contact_page_the_fix_has_no_dead_link(support, acme, settings):
    settings.ROOT_URLCONF = _urlconf(with_contacts=False)
    pat = ContactFactory(company=acme)
    message = MessageFactory(company=acme, contact=pat, status="invalid_recipient")
    html = page(support.client().get(message.get_absolute_url()))
    assert "Correct the address on the contact" in html
    assert "Fix it on the contact" not in html and "/contacts/" not in html


@pytest.mark.django_db
def test_the_fix_links_to_the_contact_once_its_page_exists(support, acme, settings):
    settings.ROOT_URLCONF = _urlconf(with_contacts=True)
    pat = ContactFactory(company=acme, name="Pat Jones")
    message = MessageFactory(company=acme, contact=pat, status="invalid_recipient")
    html = page(support.client().get(message.get_absolute_url()))
    assert f'<a href="/contacts/{pat.pk}/">Fix it on the contact</a>' in html
    assert f'<a href="/contacts/{pat.pk}/">Pat Jones</a>' in html


@pytest.mark.django_db
def test_a_long_timeline_costs_no_extra_queries(
    support, bounced_email, django_assert_max_num_queries
):
    for minute in range(3, 30):
        StatusEventFactory(
            message=bounced_email,
            status="",
            event="deferred",
            occurred_at=QUEUED_AT + timedelta(minutes=minute),
            error_code="451",
            raw_payload={"attempt": minute},
        )
    client = support.client()
    with django_assert_max_num_queries(6):
        html = page(client.get(bounced_email.get_absolute_url()))
    assert html.count('<details class="raw-report">') == 29
