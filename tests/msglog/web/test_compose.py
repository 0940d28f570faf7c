"""Compose: a support person sends one message from a template and finds it in the log.

The story: Sam (support at Acme Clinics) texts Pat a reminder from the "Reminder" SMS
template. The live preview shows the text as it will be sent, its segments, encoding
and credits against Acme's balance; sending lands on the message's detail page with a
note on where it stands, and the task is published only once the data is committed.
A typo in a typed number is caught on the form (nothing recorded); a contact whose
stored number is bad is recorded as invalid_recipient. With SMS switched off the page
warns and a send ends channel_disabled. Submitting the same form twice sends once.
Alex (accountant) may not compose; Otto (Rival Corp) cannot use Acme's templates or
contacts; Olga (operator) picks a company before she can send.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone
from django_scopes import scopes_disabled

from companies.models import Company, CreditLedgerEntry
from msglog.models import Message, SimulatedSend
from msglog.rules.segments import count_segments
from tests.factories import ContactFactory, TemplateFactory

URL = "/compose/"
HTMX = {"HTTP_HX_REQUEST": "true"}
REMINDER_TEXT = "Hi {{ first_name }}, see you on {{ appointment_date }} at {{ clinic }}."

pytestmark = pytest.mark.django_db


@pytest.fixture
def funded(acme) -> Company:
    """Acme with 20 SMS credits, topped up through the ledger."""
    with scopes_disabled():
        Company.objects.filter(pk=acme.pk).update(sms_credit_balance=20)
        CreditLedgerEntry.objects.create(company=acme, kind="top_up", amount=20, balance_after=20)
    acme.refresh_from_db()
    return acme


@pytest.fixture
def reminder(acme):
    return TemplateFactory(
        company=acme,
        channel="sms",
        category="transactional",
        message_type="reminder",
        name="Reminder",
        subject="",
        text=REMINDER_TEXT,
    )


@pytest.fixture
def welcome(acme):
    return TemplateFactory(
        company=acme,
        channel="email",
        name="Welcome",
        subject="Welcome, {{ first_name }}",
        text="Welcome, {{ first_name }}.",
        html="<p>Welcome, <b>{{ first_name }}</b></p><script>alert('owned')</script>",
    )


@pytest.fixture
def pat(acme):
    return ContactFactory(company=acme, name="Pat Lee", phone="+14155550123", email="pat@x.org")


def messages_of(company) -> list[Message]:
    with scopes_disabled():
        return list(Message.objects.filter(company=company))


def all_messages() -> int:
    with scopes_disabled():
        return Message.objects.count()


def fresh_key(client) -> str:
    page = client.get(URL)
    assert page.status_code == 200
    return page.context["form"].initial["idempotency_key"]


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def bubble(response) -> str:
    """The SMS text the preview shows (HTML-escaped as on the page)."""
    return re.search(r'<div class="sms-bubble">(.*?)</div>', response.content.decode(), re.S)[1]


def preview(client, **data):
    """The live preview, as htmx asks for it: only the `preview` partial."""
    response = client.post(URL, {"part": "preview", **data}, **HTMX)
    assert response.status_code == 200
    return response


# --- The story ------------------------------------------------------------------------------


def test_support_composes_an_sms_to_a_contact_and_lands_on_its_detail(
    support, funded, reminder, pat, django_capture_on_commit_callbacks
):
    client = support.client()
    page = client.get(URL)
    assert page.status_code == 200
    assert "Reminder (SMS)" in page.content.decode()
    key = page.context["form"].initial["idempotency_key"]
    choices = {
        "template": reminder.pk,
        "contact": pat.pk,
        "value_appointment_date": "Tuesday",
        "value_clinic": "Main St",
    }

    live = preview(client, **choices, idempotency_key=key)
    html = live.content.decode()
    assert "<html" not in html and html.lstrip().startswith('<section id="preview"')
    shown = bubble(live)
    assert shown == "Hi Pat, see you on Tuesday at Main St."
    assert "1 segment · GSM-7" in html and "1 credit (1 per segment)" in html
    assert "20 credits" in html  # the balance it is charged against
    assert all_messages() == 0  # previewing records nothing

    with django_capture_on_commit_callbacks(execute=False) as published:
        response = client.post(URL, {**choices, "idempotency_key": key})
    assert len(published) == 1  # the send task, published once the data is committed

    (message,) = messages_of(funded)
    assert response.status_code == 302 and response.url == message.get_absolute_url()
    assert message.status == "queued"
    assert message.body_text == shown  # the preview is exactly what is sent
    assert (message.channel, message.to_address, message.to_name) == ("sms", pat.phone, "Pat Lee")
    assert (message.segments, message.encoding, message.credits) == (1, "GSM-7", 1)
    assert message.contact == pat and message.created_by == support.user
    assert message.template == reminder and message.template_version.number == 1
    assert (message.category, message.message_type) == ("transactional", "reminder")
    funded.refresh_from_db()
    assert funded.sms_credit_balance == 19
    assert not SimulatedSend.objects.exists()  # the web process never calls a provider

    detail = client.get(response.url)
    assert detail.status_code == 200
    assert "Queued: SMS to Pat Lee (+14155550123). It goes out in a moment. 1 credit reserved." in (
        detail.content.decode()
    )


def test_first_name_comes_from_the_contact_unless_typed(support, funded, reminder, pat):
    client = support.client()
    client.post(
        URL,
        {
            "template": reminder.pk,
            "contact": pat.pk,
            "value_first_name": "Patricia",
            "value_appointment_date": "Friday",
            "idempotency_key": fresh_key(client),
        },
    )
    (message,) = messages_of(funded)
    assert message.body_text == "Hi Patricia, see you on Friday at ."  # clinic left empty


def test_the_preview_counts_segments_encoding_and_credits(support, funded, reminder, pat):
    client = support.client()
    base = {"template": reminder.pk, "contact": pat.pk, "value_appointment_date": "Monday"}

    gsm = preview(client, **base, value_clinic="Main St [2nd floor]")
    assert "1 segment · GSM-7" in gsm.content.decode()

    long_gsm = preview(client, **base, value_clinic="x" * 150)
    segments, encoding = count_segments(bubble(long_gsm))
    assert (segments, encoding) == (2, "GSM-7")
    assert "2 segments · GSM-7" in long_gsm.content.decode()
    assert "2 credits (1 per segment)" in long_gsm.content.decode()

    ucs2 = preview(client, **base, value_clinic="Zürich Ōsaka 😀")
    html = ucs2.content.decode()
    assert "1 segment · UCS-2" in html and "UCS-2 characters" in html
    long_ucs2 = preview(client, **base, value_clinic="Ōsaka " * 10)
    assert "2 segments · UCS-2" in long_ucs2.content.decode()
    assert "2 credits (1 per segment)" in long_ucs2.content.decode()
    assert "would not be sent" not in long_ucs2.content.decode()


def test_the_preview_warns_when_the_balance_is_short(support, acme, reminder, pat):
    client = support.client()  # Acme has no credits
    response = preview(client, template=reminder.pk, contact=pat.pk)
    html = response.content.decode()
    assert "It would not be sent." in html
    assert "<code>insufficient_credits</code>" in html and "the balance is 0" in html
    assert "too few: top up first" in html

    key = fresh_key(client)
    sent = client.post(URL, {"template": reminder.pk, "contact": pat.pk, "idempotency_key": key})
    (message,) = messages_of(acme)
    assert message.status == "insufficient_credits" and message.credits == 0
    assert flash(sent) == [
        "Not sent: Needs 1 credit; the balance was 0. It is in the log as “Insufficient credits”."
    ]


def test_the_email_preview_is_sanitized_inside_a_sandboxed_iframe(support, acme, welcome, pat):
    client = support.client()
    response = preview(client, template=welcome.pk, contact=pat.pk)
    html = response.content.decode()
    frame = re.search(r"<iframe[^>]*>", html).group(0)
    assert " sandbox " in frame and "allow-scripts" not in frame
    assert "srcdoc=" in frame
    assert "&lt;b&gt;Pat&lt;/b&gt;" in frame  # the HTML, escaped into the attribute
    assert "alert" not in html and "script" not in frame
    assert "<strong>Subject:</strong> Welcome, Pat" in html


# --- Addresses ------------------------------------------------------------------------------


def test_a_typed_address_that_is_not_a_phone_number_is_a_form_error(support, funded, reminder):
    client = support.client()
    key = fresh_key(client)
    response = client.post(
        URL, {"template": reminder.pk, "address": "555-12", "idempotency_key": key}
    )
    assert response.status_code == 200
    assert "“555-12” is not a valid phone number." in response.content.decode()
    assert all_messages() == 0  # nothing recorded

    live = preview(client, template=reminder.pk, address="555-12", idempotency_key=key)
    assert "“555-12” is not a valid phone number." in live.content.decode()
    assert "<code>invalid_recipient</code>" in live.content.decode()


def test_a_typed_national_number_is_read_in_the_companys_region(support, funded, reminder):
    client = support.client()
    key = fresh_key(client)
    response = client.post(
        URL, {"template": reminder.pk, "address": "(415) 555-0199", "idempotency_key": key}
    )
    (message,) = messages_of(funded)
    assert response.url == message.get_absolute_url()
    assert (message.to_address, message.to_name, message.status) == ("+14155550199", "", "queued")
    assert message.contact is None and message.body_text.startswith("Hi , see you")


def test_an_email_template_wants_an_email_address(support, acme, welcome):
    client = support.client()
    key = fresh_key(client)
    response = client.post(
        URL, {"template": welcome.pk, "address": "+14155550199", "idempotency_key": key}
    )
    assert "“+14155550199” is not a valid email address." in response.content.decode()
    assert all_messages() == 0


def test_a_contact_and_an_address_together_or_neither_is_a_form_error(
    support, funded, reminder, pat
):
    client = support.client()
    key = fresh_key(client)
    both = client.post(
        URL,
        {
            "template": reminder.pk,
            "contact": pat.pk,
            "address": "+14155550199",
            "idempotency_key": key,
        },
    )
    assert "Choose a contact or type an address, not both." in both.content.decode()
    neither = client.post(URL, {"template": reminder.pk, "idempotency_key": key})
    assert "Choose a contact or type an address." in neither.content.decode()
    assert all_messages() == 0


def test_a_contact_without_a_phone_number_is_a_form_error(support, funded, reminder, acme):
    no_phone = ContactFactory(company=acme, name="Robin Roe", phone="")
    client = support.client()
    response = client.post(
        URL, {"template": reminder.pk, "contact": no_phone.pk, "idempotency_key": fresh_key(client)}
    )
    assert "Robin Roe has no phone number on file" in response.content.decode()
    assert all_messages() == 0


def test_a_contacts_bad_stored_number_is_recorded_as_invalid_recipient(
    support, funded, reminder, acme
):
    """The send service's own check: the message is in the log, saying why it never went."""
    typo = ContactFactory(company=acme, name="Kim Typo", phone="+1555")
    client = support.client()
    response = client.post(
        URL, {"template": reminder.pk, "contact": typo.pk, "idempotency_key": fresh_key(client)}
    )
    (message,) = messages_of(funded)
    assert response.url == message.get_absolute_url()
    assert message.status == "invalid_recipient" and message.credits == 0
    assert flash(response) == [
        "Not sent: +1555 is not a valid phone number. It is in the log as “Invalid recipient”."
    ]


# --- Channel switches, double submits, schedules --------------------------------------------


def test_with_sms_disabled_the_page_warns_and_a_send_ends_channel_disabled(
    support, funded, reminder, pat, django_capture_on_commit_callbacks
):
    Company.objects.filter(pk=funded.pk).update(sms_enabled=False)
    client = support.client()
    page = client.get(URL, {"template": reminder.pk})
    html = page.content.decode()
    assert "SMS is disabled for Acme Clinics" in html
    assert "would end as <code>channel_disabled</code>" in html  # before any recipient

    with django_capture_on_commit_callbacks(execute=False) as published:
        response = client.post(
            URL, {"template": reminder.pk, "contact": pat.pk, "idempotency_key": fresh_key(client)}
        )
    assert published == []  # nothing to hand to a worker
    (message,) = messages_of(funded)
    assert message.status == "channel_disabled" and message.credits == 0
    assert flash(response) == [
        "Not sent: SMS is disabled for Acme Clinics. It is in the log as “Channel disabled”."
    ]


def test_submitting_the_same_form_twice_sends_once(support, funded, reminder, pat):
    client = support.client()
    key = fresh_key(client)
    data = {"template": reminder.pk, "contact": pat.pk, "idempotency_key": key}
    first = client.post(URL, data)
    second = client.post(URL, data)
    (message,) = messages_of(funded)
    assert first.url == second.url == message.get_absolute_url()
    assert flash(second)[-1] == "This form was already sent: nothing new was sent."
    funded.refresh_from_db()
    assert funded.sms_credit_balance == 19  # charged once
    assert fresh_key(client) != key  # every rendering of the form gets its own key


def test_a_forged_idempotency_key_is_refused(support, funded, reminder, pat):
    client = support.client()
    response = client.post(
        URL, {"template": reminder.pk, "contact": pat.pk, "idempotency_key": "batch-import-1"}
    )
    assert "The form is out of date: reload the page." in response.content.decode()
    assert all_messages() == 0


def test_a_scheduled_time_in_the_past_is_a_form_error(support, funded, reminder, pat):
    client = support.client()
    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        URL,
        {
            "template": reminder.pk,
            "contact": pat.pk,
            "scheduled_for": past,
            "idempotency_key": fresh_key(client),
        },
    )
    assert "Pick a time in the future (times are in UTC)" in response.content.decode()
    assert all_messages() == 0


def test_a_scheduled_time_is_read_in_the_companys_time_zone(
    support, funded, reminder, pat, django_capture_on_commit_callbacks
):
    Company.objects.filter(pk=funded.pk).update(timezone="America/New_York")
    new_york = ZoneInfo("America/New_York")
    tomorrow = timezone.now().astimezone(new_york).date() + timedelta(days=1)
    client = support.client()
    with django_capture_on_commit_callbacks(execute=False) as published:
        response = client.post(
            URL,
            {
                "template": reminder.pk,
                "contact": pat.pk,
                "scheduled_for": f"{tomorrow:%Y-%m-%d}T09:30",
                "idempotency_key": fresh_key(client),
            },
        )
    assert published == []  # the periodic task dispatches it when due
    (message,) = messages_of(funded)
    assert message.status == "scheduled"
    expected = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, 30, tzinfo=new_york)
    assert message.scheduled_for == expected
    assert flash(response)[0].startswith("Scheduled: SMS to Pat Lee (+14155550123), for ")
    assert "09:30 E" in flash(response)[0]  # EST or EDT


# --- Finding contacts, choosing templates ---------------------------------------------------


def test_the_contact_list_stays_short_and_the_search_narrows_it(support, funded, reminder, acme):
    for n in range(60):
        ContactFactory(company=acme, name=f"Person {n:02d}")
    ContactFactory(company=acme, name="Zoe Quill", phone="+14155550177")
    client = support.client()
    page = client.get(URL)
    assert page.context["form"].contact_total == 61
    assert "The first 50 of 61 contacts" in page.content.decode()
    listed = re.search(r'<select name="contact".*?</select>', page.content.decode(), re.S)[0]
    assert listed.count("<option") == 50 + 1  # the first 50, and "No contact"

    found = client.post(URL, {"part": "contacts", "contact_q": "quill"}, **HTMX)
    html = found.content.decode()
    assert html.lstrip().startswith('<div id="contact-picker"') and "<html" not in html
    assert "Zoe Quill — +14155550177" in html and "Person 01" not in html
    assert "1 contact matching “quill”" in html

    by_number = client.post(URL, {"find": "1", "contact_q": "0177"})  # without JavaScript
    assert "Zoe Quill" in by_number.content.decode() and "<html" in by_number.content.decode()

    # A contact beyond the first 50 can still be sent to once chosen.
    late = ContactFactory(company=acme, name="Zz Last", phone="+14155550188")
    response = client.post(
        URL, {"template": reminder.pk, "contact": late.pk, "idempotency_key": fresh_key(client)}
    )
    (message,) = messages_of(funded)
    assert response.url == message.get_absolute_url() and message.contact == late


def test_choosing_a_template_shows_its_placeholders(support, acme, reminder, welcome):
    client = support.client()
    key = fresh_key(client)
    response = client.post(
        URL, {"part": "compose", "template": reminder.pk, "idempotency_key": key}, **HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="compose"') and "<html" not in html
    for name in ("first_name", "appointment_date", "clinic"):
        assert f'name="value_{name}"' in html
    assert f'value="{key}"' in html  # the same form, the same key
    assert "form-error" not in html  # no errors before a send attempt
    assert "Choose a contact or type an address." in html  # the preview says what is left


def test_without_javascript_the_preview_button_renders_the_page(support, funded, reminder, pat):
    client = support.client()
    response = client.post(
        URL,
        {
            "preview": "1",
            "template": reminder.pk,
            "contact": pat.pk,
            "idempotency_key": fresh_key(client),
        },
    )
    html = response.content.decode()
    assert "<html" in html and 'id="preview"' in html
    assert "Hi Pat, see you on  at ." in html
    assert all_messages() == 0


# --- Who may send ---------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["accountant", "viewer"])
def test_roles_without_send_get_403_with_the_reason(request, persona, reminder, pat):
    client = request.getfixturevalue(persona).client()
    for response in (
        client.get(URL),
        client.post(URL, {"template": reminder.pk, "contact": pat.pk, "idempotency_key": "x"}),
    ):
        assert response.status_code == 403
        assert "Your role does not include sending messages." in response.content.decode()
    assert all_messages() == 0


def test_admins_may_send(admin, funded, reminder, pat):
    client = admin.client()
    client.post(
        URL, {"template": reminder.pk, "contact": pat.pk, "idempotency_key": fresh_key(client)}
    )
    assert len(messages_of(funded)) == 1


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response.url


def test_an_outsider_cannot_use_acmes_templates_or_contacts(outsider, rival, reminder, pat):
    client = outsider.client()
    page = client.get(URL, {"template": reminder.pk, "contact": pat.pk})
    assert "Reminder" not in page.content.decode() and "Pat Lee" not in page.content.decode()

    key = fresh_key(client)
    response = client.post(
        URL, {"template": reminder.pk, "address": "+14155550199", "idempotency_key": key}
    )
    assert "That template is not one of this company&#x27;s." in response.content.decode()

    own = TemplateFactory(company=rival, channel="sms", name="Rival reminder")
    response = client.post(URL, {"template": own.pk, "contact": pat.pk, "idempotency_key": key})
    assert "That contact is not one of this company&#x27;s." in response.content.decode()
    assert "Pat Lee" not in response.content.decode()

    live = preview(client, template=reminder.pk, contact=pat.pk, idempotency_key=key)
    assert "Pat Lee" not in live.content.decode() and "Hi " not in live.content.decode()
    assert all_messages() == 0


def test_an_operator_picks_a_company_before_sending(operator, funded, reminder, pat):
    client = operator.client()
    page = client.get(URL)
    assert "Pick one in the Company switcher" in page.content.decode()
    refused = client.post(
        URL, {"template": reminder.pk, "contact": pat.pk, "idempotency_key": "compose-" + "0" * 32}
    )
    assert refused.status_code == 400 and all_messages() == 0

    client.post("/switch-company/", {"company": str(funded.pk), "next": URL})
    client.post(
        URL, {"template": reminder.pk, "contact": pat.pk, "idempotency_key": fresh_key(client)}
    )
    (message,) = messages_of(funded)
    assert message.created_by == operator.user


# --- In a real browser ----------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_preview_follows_what_support_types(live_server, chromium, support, reminder, pat):
    """htmx wiring: the template brings its placeholders, the search narrows the contacts,
    and the preview follows every change. Acme has no credits: the send records
    insufficient_credits and publishes no task (no broker needed)."""
    from tests.browser import sign_in
    from tests.factories import PASSWORD

    ContactFactory(company=reminder.company, name="Zoe Quill", phone="+14155550177")
    page = sign_in(chromium, live_server.url, support.user.username, PASSWORD)
    page.goto(f"{live_server.url}{URL}")
    assert "Choose a template" in page.inner_text("#preview")

    page.select_option("#id_template", str(reminder.pk))
    page.wait_for_selector("#id_value_clinic")
    page.fill("#id_contact_q", "quill")
    page.wait_for_function("!document.querySelector('#id_contact').innerText.includes('Pat Lee')")
    page.fill("#id_contact_q", "")
    page.wait_for_function("document.querySelector('#id_contact').innerText.includes('Pat Lee')")
    page.select_option("#id_contact", str(pat.pk))
    page.wait_for_function("document.querySelector('#preview').innerText.includes('Hi Pat')")
    page.fill("#id_value_clinic", "Zürich 😀")
    page.wait_for_function("document.querySelector('#preview').innerText.includes('Zürich')")
    text = page.inner_text("#preview")
    assert "UCS-2" in text and "insufficient_credits" in text

    page.click("button.primary")
    page.wait_for_url("**/messages/**")
    assert "Not sent: Needs 1 credit; the balance was 0." in page.inner_text("main")
    (message,) = messages_of(reminder.company)
    assert message.body_text == "Hi Pat, see you on  at Zürich 😀."


@pytest.mark.parametrize("junk", ["99999999999999999999999", "²", "-1", "1; DROP"])
def test_junk_ids_are_form_errors_not_crashes(support, funded, reminder, junk):
    client = support.client()
    key = fresh_key(client)
    for data in ({"template": junk}, {"template": reminder.pk, "contact": junk}):
        response = client.post(URL, {**data, "address": "+14155550199", "idempotency_key": key})
        assert response.status_code == 200
        live = preview(client, **data)
        assert live.status_code == 200
    page = client.get(URL, {"template": junk, "contact": junk})
    assert page.status_code == 200
    assert all_messages() == 0
