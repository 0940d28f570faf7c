"""The one table that says what a provider's error means and what to do about it."""

from __future__ import annotations

import pytest

from msglog.models import Message
from msglog.rules.errors import ERRORS, Family, FixAt, explain, explain_code
from msglog.rules.statuses import NEVER_SENT, Status

TWILIO_CODES = [
    "21211",
    "21408",
    "21610",
    "21614",
    "30003",
    "30004",
    "30005",
    "30006",
    "30007",
    "30008",
    "30034",
]
SMTP_CODES = ["421", "450", "451", "452", "550", "552", "554", "4xx", "5xx"]
ENHANCED_CODES = ["5.1.1", "5.2.2", "5.7.1", "4.2.2"]
ANYMAIL_REASONS = ["invalid", "bounced", "timed_out", "blocked", "spam", "unsubscribed", "other"]


def email(**fields) -> Message:
    """An unsaved email, as explain() sees one: only its fields matter."""
    return Message(**{"channel": "email", "provider": "smtp", "to_address": "a@b.org", **fields})


def sms(**fields) -> Message:
    return Message(
        **{"channel": "sms", "provider": "twilio", "to_address": "+14155550100", **fields}
    )


@pytest.mark.parametrize(
    ("family", "code"),
    [(Family.TWILIO, c) for c in TWILIO_CODES]
    + [(Family.SMTP, c) for c in SMTP_CODES]
    + [(Family.SMTP_ENHANCED, c) for c in ENHANCED_CODES]
    + [(Family.ANYMAIL, r) for r in ANYMAIL_REASONS]
    + [(Family.STATUS, s.value) for s in sorted(NEVER_SENT)],
)
def test_the_table_explains_every_code_we_promised(family, code):
    entry = ERRORS[(family, code)]
    assert entry.title.strip() and entry.meaning.strip() and entry.fix.strip()


def test_every_entry_reads_as_sentences():
    for key, entry in ERRORS.items():
        assert entry.meaning.endswith("."), key
        assert entry.fix.endswith("."), key


def test_a_twilio_code_is_explained_with_the_providers_page():
    explanation = explain(sms(status="undelivered", error_code="30003"))
    assert explanation.title == "Unreachable handset"
    assert "off, out of coverage" in explanation.meaning
    assert explanation.code == "30003"
    assert explanation.temporary
    assert explanation.reference_url.endswith("/30003")


def test_a_bad_number_is_fixed_on_the_contact():
    explanation = explain(sms(status="failed", error_code="21211"))
    assert explanation.fix_at == FixAt.CONTACT
    assert explanation.fix_link_text == "Fix it on the contact"


def test_smtp_user_unknown_uses_the_enhanced_code():
    explanation = explain(
        email(
            status="bounced",
            error_code="550",
            error_message="5.1.1 <pat@example.org>: Recipient address rejected: User unknown",
        )
    )
    assert explanation.title == "Mailbox does not exist"
    assert explanation.code == "550 5.1.1"
    assert explanation.fix_at == FixAt.CONTACT


def test_an_smtp_reply_in_the_message_alone_is_understood():
    explanation = explain(email(status="bounced", error_message="552 5.2.2 Mailbox full"))
    assert explanation.title == "Mailbox full"


def test_an_unlisted_enhanced_code_falls_back_to_its_subject_not_the_bare_550():
    explanation = explain(email(status="bounced", error_code="550 5.7.23 SPF failed"))
    assert explanation.title == "Refused for security or policy"


@pytest.mark.parametrize(
    ("code", "title", "temporary"),
    [
        ("447", "Temporary failure at the recipient's server", True),
        ("571", "Permanent rejection by the recipient's server", False),
        ("4.9.9", "Temporary failure at the recipient's server", True),
    ],
)
def test_any_other_4xx_or_5xx_gets_its_class(code, title, temporary):
    explanation = explain(email(status="failed", error_code=code))
    assert (explanation.title, explanation.temporary) == (title, temporary)
    assert explanation.code == code


def test_numbers_later_in_the_text_are_not_taken_for_a_reply_code():
    explanation = explain(email(status="failed", error_message="Connection to port 587 refused"))
    assert not explanation.known
    assert "port 587" in explanation.meaning


def test_an_sms_providers_http_status_is_not_read_as_smtp():
    explanation = explain(sms(status="failed", error_code="503"))
    assert not explanation.known


@pytest.mark.parametrize("reason", ANYMAIL_REASONS)
def test_anymail_reject_reasons_are_explained_from_the_code_or_the_reason(reason):
    by_code = explain(email(provider="anymail", status="failed", error_code=reason))
    by_reason = explain(email(provider="anymail", status="failed", status_reason=reason))
    assert by_code == by_reason
    assert by_code.family == Family.ANYMAIL and by_code.known


@pytest.mark.parametrize(
    ("status", "words", "fix_at"),
    [
        (Status.INVALID_RECIPIENT, "on the contact", FixAt.CONTACT),
        (Status.INSUFFICIENT_CREDITS, "tops up SMS credits", FixAt.COMPANY_SETTINGS),
        (Status.CHANNEL_DISABLED, "turns the channel on", FixAt.COMPANY_SETTINGS),
        (Status.SUPPRESSED, "bounce means the address is wrong", FixAt.CONTACT),
        (Status.CANCELED, "Restart the batch", FixAt.BATCH),
    ],
)
def test_never_sent_statuses_explain_themselves(status, words, fix_at):
    explanation = explain(sms(status=status))
    assert words in explanation.fix
    assert explanation.fix_at == fix_at
    assert explanation.code == ""


def test_a_never_sent_status_wins_over_words_we_do_not_know():
    explanation = explain(
        email(status="invalid_recipient", error_message="The domain name example,org is invalid")
    )
    assert explanation.title == "Invalid recipient"


def test_a_suppressed_message_says_why():
    explanation = explain(email(status="suppressed"), suppression_reason="Hard bounce")
    assert explanation.meaning.endswith("Why: Hard bounce.")


def test_an_unknown_code_is_shown_as_it_came_not_guessed():
    explanation = explain(sms(status="failed", error_code="39999", error_message="Carrier hiccup"))
    assert not explanation.known
    assert explanation.title == "Error 39999"
    assert "39999" in explanation.meaning and "Carrier hiccup" in explanation.meaning
    assert explanation.fix


def test_no_error_no_explanation():
    assert explain(email(status="delivered")) is None
    assert explain_code("", "") is None
