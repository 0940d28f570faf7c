"""What a provider's error means in plain words, and what to do about it.

One table, :data:`ERRORS`, keyed by (family, code), holds every explanation we know:
Twilio error codes, SMTP reply codes (basic and enhanced), anymail's normalized reject
reasons, and our own never-sent statuses. :func:`explain` picks the entry that fits a
message; a code missing from the table gets an honest generic explanation that shows
the raw code, never a guess.

No URL of this app lives here: an entry names *where* the fix is done (:class:`FixAt`)
and the page that shows the explanation turns that into a link when the route exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from msglog.rules.kinds import Channel
from msglog.rules.statuses import Status


class FixAt(StrEnum):
    """Where in the app a person fixes the cause; the detail page links it when it can."""

    NOWHERE = ""
    CONTACT = "contact"
    COMPANY_SETTINGS = "company_settings"
    TEMPLATE = "template"
    BATCH = "batch"


# The words of the link to each place (the link itself is the template's business).
FIX_LINK_TEXT: dict[FixAt, str] = {
    FixAt.CONTACT: "Fix it on the contact",
    FixAt.COMPANY_SETTINGS: "Open Company settings",
    FixAt.TEMPLATE: "Review the template",
    FixAt.BATCH: "Open the batch",
}


class Family(StrEnum):
    """Which vocabulary a code belongs to."""

    TWILIO = "twilio"
    SMTP = "smtp"  # 3-digit reply codes, and "4xx"/"5xx" for a whole class
    SMTP_ENHANCED = "smtp_enhanced"  # RFC 3463 codes ("5.1.1") and their prefixes ("5.1")
    ANYMAIL = "anymail"
    STATUS = "status"  # our own never-sent statuses


@dataclass(frozen=True)
class Entry:
    """One row of the table."""

    title: str
    meaning: str
    fix: str
    fix_at: FixAt = FixAt.NOWHERE
    temporary: bool = False  # the provider may succeed if asked again later


@dataclass(frozen=True)
class Explanation:
    """What the detail page shows under "Error": the entry, plus the raw code it matched."""

    title: str
    meaning: str
    fix: str
    code: str = ""  # the raw code as the provider gave it ("" for our own statuses)
    family: str = ""
    fix_at: FixAt = FixAt.NOWHERE
    temporary: bool = False
    known: bool = True  # False: no entry matched, the text is the generic one
    reference_url: str = ""  # the provider's own page about this code, when it has one

    @property
    def fix_link_text(self) -> str:
        return FIX_LINK_TEXT.get(self.fix_at, "")


_T, _S, _E, _A, _N = (
    Family.TWILIO,
    Family.SMTP,
    Family.SMTP_ENHANCED,
    Family.ANYMAIL,
    Family.STATUS,
)

ERRORS: dict[tuple[Family, str], Entry] = {
    # --- Twilio (https://www.twilio.com/docs/api/errors) ---------------------------------
    (_T, "21211"): Entry(
        "Invalid 'To' phone number",
        "The phone number is not a valid number: digits are missing, extra, or in the "
        "wrong format.",
        "Correct the number on the contact in full international form (e.g. +14155550100), "
        "then send again.",
        FixAt.CONTACT,
    ),
    (_T, "21408"): Entry(
        "Country not enabled for SMS",
        "Our SMS account is not allowed to send to the country or region of this number.",
        "An admin must enable that country in the SMS provider's geographic permissions "
        "(Twilio Console > Messaging > Settings > Geo permissions). Until then, use email.",
    ),
    (_T, "21608"): Entry(
        "Number not verified for a trial account",
        "The SMS account is a trial account, which may only text numbers verified on it.",
        "An admin must upgrade the SMS provider account, or verify this number on it.",
    ),
    (_T, "21610"): Entry(
        "Recipient unsubscribed (replied STOP)",
        "The recipient replied STOP to our number, so the carrier will not deliver our texts "
        "to them.",
        "Do not resend. Only the recipient can opt back in, by texting START to our number. "
        "Reach them by email meanwhile.",
        FixAt.CONTACT,
    ),
    (_T, "21612"): Entry(
        "Number cannot be reached by SMS",
        "No carrier route exists from our sending number to this number.",
        "Check the number with the recipient, or use email.",
        FixAt.CONTACT,
    ),
    (_T, "21614"): Entry(
        "Not a mobile number",
        "The number is valid but cannot receive texts, usually because it is a landline.",
        "Add the recipient's mobile number to the contact, or use email.",
        FixAt.CONTACT,
    ),
    (_T, "21617"): Entry(
        "Message too long",
        "The text is longer than the 1,600 characters an SMS may have in all its segments.",
        "Shorten the template's text, then send again.",
        FixAt.TEMPLATE,
    ),
    (_T, "30001"): Entry(
        "Provider queue overflow",
        "We sent messages faster than the sending number may send, and the provider's queue "
        "for it overflowed.",
        "Send again later; for large sends, use a batch, which keeps to the rate limit.",
        temporary=True,
    ),
    (_T, "30003"): Entry(
        "Unreachable handset",
        "The recipient's phone could not be reached: it is off, out of coverage, or cannot "
        "take texts right now.",
        "Usually temporary: send again later. If it keeps happening, confirm the number "
        "with the recipient.",
        FixAt.CONTACT,
        temporary=True,
    ),
    (_T, "30004"): Entry(
        "Message blocked",
        "The recipient's phone or carrier blocks messages from our number (the recipient "
        "may have blocked us, or their plan does not take such messages).",
        "Do not keep resending. Ask the recipient to unblock our number, or use email.",
        FixAt.CONTACT,
    ),
    (_T, "30005"): Entry(
        "Unknown handset",
        "The number does not exist or is no longer in service.",
        "Confirm the number with the recipient and correct it on the contact.",
        FixAt.CONTACT,
    ),
    (_T, "30006"): Entry(
        "Landline or unreachable carrier",
        "The number is a landline, or its carrier does not accept texts.",
        "Add the recipient's mobile number to the contact, or use email.",
        FixAt.CONTACT,
    ),
    (_T, "30007"): Entry(
        "Filtered by the carrier as spam",
        "The carrier filtered the message: its content or sending pattern looked like spam "
        "or broke the carrier's rules.",
        "Review the template's wording (no link shorteners, no all-caps, say who is "
        "writing), and make sure the sending number is registered. Contact the SMS provider "
        "if it goes on.",
        FixAt.TEMPLATE,
    ),
    (_T, "30008"): Entry(
        "Unknown carrier error",
        "The carrier refused the message without saying why.",
        "Send again. If it repeats for many recipients, give the SMS provider the provider "
        "message id shown here.",
        temporary=True,
    ),
    (_T, "30032"): Entry(
        "Toll-free number not verified",
        "The toll-free number we send from has not been verified, so US and Canadian "
        "carriers block its texts.",
        "An admin must complete toll-free verification with the SMS provider.",
    ),
    (_T, "30034"): Entry(
        "Unregistered 10DLC number",
        "US carriers blocked it because our sending number is not registered for A2P 10DLC "
        "(a registered brand and approved campaign).",
        "An admin must register the sending number's brand and campaign with the SMS "
        "provider; texts to US numbers fail until then.",
    ),
    # --- SMTP enhanced status codes (RFC 3463), exact ------------------------------------
    (_E, "5.1.1"): Entry(
        "Mailbox does not exist",
        "The recipient's mail server says there is no mailbox at this address (user "
        "unknown), often a typo.",
        "Correct the email address on the contact, then send again.",
        FixAt.CONTACT,
    ),
    (_E, "5.1.2"): Entry(
        "Email domain does not exist",
        "The part after the @ is not a domain that receives email, often a typo.",
        "Correct the email address on the contact, then send again.",
        FixAt.CONTACT,
    ),
    (_E, "5.1.10"): Entry(
        "Domain takes no email",
        "The recipient's domain declares that it accepts no email at all (null MX).",
        "Ask the recipient for another email address.",
        FixAt.CONTACT,
    ),
    (_E, "5.2.1"): Entry(
        "Mailbox disabled",
        "The mailbox exists but is disabled and takes no mail.",
        "Ask the recipient for another email address.",
        FixAt.CONTACT,
    ),
    (_E, "5.2.2"): Entry(
        "Mailbox full",
        "The recipient's mailbox is full.",
        "Send again later or reach the recipient another way; they must make room.",
    ),
    (_E, "5.2.3"): Entry(
        "Message too large",
        "The recipient's server takes no message this large.",
        "Make the template's email smaller (fewer or smaller images, no attachments).",
        FixAt.TEMPLATE,
    ),
    (_E, "5.7.1"): Entry(
        "Refused by the recipient's server policy",
        "The recipient's server refused the message by its policy: a spam filter, a block "
        "of our sender, or a private address that only takes mail from certain senders.",
        "Ask the recipient to allow our sender address; if many recipients get this, "
        "check the sending domain's reputation with the email provider.",
    ),
    (_E, "5.7.26"): Entry(
        "Failed sender authentication",
        "The recipient's server could not confirm the message came from our domain (SPF, "
        "DKIM and DMARC checks failed).",
        "An admin must set up SPF, DKIM and DMARC for the sending domain with the email provider.",
    ),
    (_E, "4.2.2"): Entry(
        "Mailbox full (for now)",
        "The recipient's mailbox is full at the moment.",
        "Nothing to do now: the email is tried again automatically. If it ends failed, "
        "send again later.",
        temporary=True,
    ),
    (_E, "4.4.1"): Entry(
        "Recipient's server did not answer",
        "The recipient's mail server did not answer in time.",
        "Nothing to do now: the email is tried again automatically.",
        temporary=True,
    ),
    # --- SMTP enhanced status codes, by class.subject (when no exact code matches) --------
    (_E, "5.1"): Entry(
        "Bad recipient address",
        "The recipient's server rejected the address itself.",
        "Check the email address on the contact with the recipient.",
        FixAt.CONTACT,
    ),
    (_E, "5.2"): Entry(
        "Mailbox problem",
        "The recipient's mailbox cannot take the message (disabled, full or restricted).",
        "Ask the recipient to check their mailbox, or for another email address.",
        FixAt.CONTACT,
    ),
    (_E, "5.4"): Entry(
        "Delivery route failed",
        "No working route was found to the recipient's mail server.",
        "Check the domain of the email address on the contact.",
        FixAt.CONTACT,
    ),
    (_E, "5.7"): Entry(
        "Refused for security or policy",
        "The recipient's server refused the message for a security or policy reason (spam "
        "filtering, sender authentication, or a block).",
        "Ask the recipient to allow our sender address; if many recipients get this, "
        "check the sending domain with the email provider.",
    ),
    (_E, "4.2"): Entry(
        "Mailbox busy or full (for now)",
        "The recipient's mailbox cannot take mail at the moment.",
        "Nothing to do now: the email is tried again automatically.",
        temporary=True,
    ),
    (_E, "4.4"): Entry(
        "Network trouble (for now)",
        "The recipient's mail server could not be reached at the moment.",
        "Nothing to do now: the email is tried again automatically.",
        temporary=True,
    ),
    (_E, "4.7"): Entry(
        "Deferred by policy (for now)",
        "The recipient's server asked us to come back later (greylisting or rate limiting).",
        "Nothing to do now: the email is tried again automatically.",
        temporary=True,
    ),
    # --- SMTP basic reply codes (RFC 5321) -------------------------------------------------
    (_S, "421"): Entry(
        "Recipient's server unavailable (for now)",
        "The recipient's mail server is busy or shutting down and closed the connection.",
        "Nothing to do now: the email is tried again automatically.",
        temporary=True,
    ),
    (_S, "450"): Entry(
        "Mailbox unavailable (for now)",
        "The recipient's mailbox could not take mail at the moment (busy, or greylisting).",
        "Nothing to do now: the email is tried again automatically.",
        temporary=True,
    ),
    (_S, "451"): Entry(
        "Recipient's server error (for now)",
        "The recipient's mail server had a local error and asked us to try later.",
        "Nothing to do now: the email is tried again automatically.",
        temporary=True,
    ),
    (_S, "452"): Entry(
        "Recipient's server out of room (for now)",
        "The recipient's mail server has too little storage, or got too many recipients at once.",
        "Nothing to do now: the email is tried again automatically.",
        temporary=True,
    ),
    (_S, "550"): Entry(
        "Mailbox unavailable",
        "The recipient's server will not deliver to this address: the mailbox does not "
        "exist, or the server refused the message by its policy.",
        "Check the email address on the contact with the recipient; the provider's raw "
        "answer in the timeline says which.",
        FixAt.CONTACT,
    ),
    (_S, "551"): Entry(
        "User not local",
        "The recipient's server says this address is not one of its own.",
        "Ask the recipient for their current email address.",
        FixAt.CONTACT,
    ),
    (_S, "552"): Entry(
        "Mailbox full",
        "The recipient's mailbox is over its storage limit.",
        "Send again later or reach the recipient another way; they must make room.",
    ),
    (_S, "553"): Entry(
        "Address not allowed",
        "The recipient's server rejected the address as not valid.",
        "Correct the email address on the contact, then send again.",
        FixAt.CONTACT,
    ),
    (_S, "554"): Entry(
        "Rejected by the recipient's server",
        "The recipient's server rejected the message, often as spam or by its policy.",
        "Ask the recipient to allow our sender address; if many recipients get this, "
        "check the sending domain with the email provider.",
    ),
    # --- SMTP reply classes: any other 4xx / 5xx ----------------------------------------
    (_S, "4xx"): Entry(
        "Temporary failure at the recipient's server",
        "The recipient's server could not take the message now but may later.",
        "Nothing to do now: the email is tried again automatically. If it ends failed, "
        "send again later.",
        temporary=True,
    ),
    (_S, "5xx"): Entry(
        "Permanent rejection by the recipient's server",
        "The recipient's server refused the message and will not accept it if sent again "
        "unchanged.",
        "Check the email address on the contact; the provider's raw answer in the timeline "
        "gives the server's own words.",
        FixAt.CONTACT,
    ),
    # --- anymail's normalized reject reasons ----------------------------------------------
    (_A, "invalid"): Entry(
        "Invalid email address",
        "The email provider refused the address as malformed.",
        "Correct the email address on the contact, then send again.",
        FixAt.CONTACT,
    ),
    (_A, "bounced"): Entry(
        "Address bounced",
        "The address bounced (now or on an earlier send), so the email provider will not "
        "deliver to it.",
        "Confirm the address with the recipient and correct it on the contact.",
        FixAt.CONTACT,
    ),
    (_A, "timed_out"): Entry(
        "Repeated delivery failures",
        "Delivery to this address kept failing until the email provider gave up on it.",
        "Confirm the address with the recipient, or reach them another way.",
        FixAt.CONTACT,
    ),
    (_A, "blocked"): Entry(
        "Blocked by the email provider",
        "The email provider's own policy blocked this message or address.",
        "An admin should check the email provider's dashboard for the block and its reason.",
    ),
    (_A, "spam"): Entry(
        "Recipient reported spam",
        "The recipient marked an email from us as spam, so the provider no longer emails them.",
        "Do not resend. Only the recipient can ask to receive email again.",
    ),
    (_A, "unsubscribed"): Entry(
        "Recipient unsubscribed",
        "The recipient unsubscribed, so the email provider no longer emails them.",
        "Do not resend. Only the recipient can subscribe again.",
    ),
    (_A, "other"): Entry(
        "Rejected by the email provider",
        "The email provider rejected it for a reason it does not classify.",
        "See the provider's raw answer in the timeline for its own words.",
    ),
    # --- our own never-sent statuses ------------------------------------------------------
    (_N, Status.INVALID_RECIPIENT): Entry(
        "Invalid recipient",
        "The phone number or email address is not valid, so it was never sent.",
        "Correct the address on the contact, then send again.",
        FixAt.CONTACT,
    ),
    (_N, Status.INSUFFICIENT_CREDITS): Entry(
        "Not enough SMS credits",
        "The company had too few SMS credits for this message's segments, so it was never sent.",
        "An admin tops up SMS credits in Company settings, then sends again.",
        FixAt.COMPANY_SETTINGS,
    ),
    (_N, Status.CHANNEL_DISABLED): Entry(
        "Channel turned off",
        "This channel (SMS or email) is turned off for the company, so it was never sent.",
        "An admin turns the channel on in Company settings, then sends again.",
        FixAt.COMPANY_SETTINGS,
    ),
    (_N, Status.SUPPRESSED): Entry(
        "Address on the suppression list",
        "The address is on the company's suppression list, so it was never sent.",
        "Only send again if the recipient asked for it: a bounce means the address is wrong, "
        "a STOP or unsubscribe means they do not want these messages.",
        FixAt.CONTACT,
    ),
    (_N, Status.CANCELED): Entry(
        "Batch stopped",
        "The batch was stopped before this message was sent, so it was never sent.",
        "Restart the batch for the recipients who did not get it.",
        FixAt.BATCH,
    ),
}

_TWILIO_CODE = re.compile(r"^\d{5}$")
# An SMTP reply starts with its code: "550", "550 5.1.1 <a@b>: user unknown", "550-5.7.1 ...",
# or an enhanced code alone ("5.1.1"). Only the start counts, so a port or a version
# number further on ("port 587", "v4.2.1") is never taken for a reply code.
_SMTP_REPLY = re.compile(
    r"\s*(?:smtp[\s:]*)?(?:(?P<basic>[245]\d\d)(?![\d.]))?[\s:-]*"
    r"(?:(?P<enhanced>[245]\.\d{1,3}\.\d{1,3})(?![\d.]))?",
    re.IGNORECASE,
)
TWILIO_DOCS = "https://www.twilio.com/docs/api/errors/{code}"


def _explanation(family: Family, key: str, code: str, reference_url: str = "") -> Explanation:
    entry = ERRORS[(family, key)]
    return Explanation(
        title=entry.title,
        meaning=entry.meaning,
        fix=entry.fix,
        code=code,
        family=family,
        fix_at=entry.fix_at,
        temporary=entry.temporary,
        reference_url=reference_url,
    )


def smtp_reply_codes(*texts: str) -> tuple[str, str]:
    """The (basic, enhanced) SMTP codes at the start of the first text that has each."""
    basic = enhanced = ""
    for text in texts:
        match = _SMTP_REPLY.match(text or "")
        if match:
            basic = basic or (match.group("basic") or "")
            enhanced = enhanced or (match.group("enhanced") or "")
    return basic, enhanced


def _smtp(code: str, text: str) -> Explanation | None:
    """The most specific SMTP entry: exact enhanced code, its class.subject prefix, the
    3-digit code, then the 4xx/5xx class. The enhanced code outranks the basic one
    because servers answer many different refusals with the same 550."""
    basic, enhanced = smtp_reply_codes(code, text)
    # Show the codes themselves; the server's words are shown beside them already.
    code = " ".join(c for c in (basic, enhanced) if c) or code
    if enhanced:
        klass, subject, _detail = enhanced.split(".")
        for key in (enhanced, f"{klass}.{subject}"):
            if (Family.SMTP_ENHANCED, key) in ERRORS:
                return _explanation(Family.SMTP_ENHANCED, key, code)
    if basic and (Family.SMTP, basic) in ERRORS:
        return _explanation(Family.SMTP, basic, code)
    klass = (basic or enhanced)[:1]
    if klass in {"4", "5"}:
        return _explanation(Family.SMTP, f"{klass}xx", code)
    return None


def explain_code(
    code: str, text: str = "", *, channel: str = "", provider: str = ""
) -> Explanation | None:
    """The explanation of one provider error (a message's or one timeline event's).

    `code` is the provider's code, `text` its message. Returns None when there is no
    error at all; an unknown code gets a generic explanation that shows it.
    """
    code = (code or "").strip()
    text = (text or "").strip()
    if not code and not text:
        return None
    word = code.lower().removeprefix("anymail:").strip()

    if (Family.ANYMAIL, word) in ERRORS and channel != Channel.SMS:
        return _explanation(Family.ANYMAIL, word, code)
    if (Family.STATUS, word) in ERRORS:
        return _explanation(Family.STATUS, word, "")
    if _TWILIO_CODE.match(code):
        reference = TWILIO_DOCS.format(code=code)
        if (Family.TWILIO, code) in ERRORS:
            return _explanation(Family.TWILIO, code, code, reference_url=reference)
        if provider == "twilio" or channel == Channel.SMS:
            return _unknown(code, text, "Twilio", reference)
    # SMTP replies only make sense for email: an SMS provider's "400" is an HTTP status.
    if channel != Channel.SMS:
        found = _smtp(code, text)
        if found:
            return found
    return _unknown(code, text, provider.title() if provider else "The provider")


def _unknown(code: str, text: str, who: str, reference_url: str = "") -> Explanation:
    """The honest answer for a code we have no entry for: say so, and show it as it came."""
    meaning = "We have no plain-words explanation for this error yet."
    if code:
        meaning += f" {who} gave code {code}."
    if text:
        meaning += f" Its own words: “{text}”."
    return Explanation(
        title=f"Error {code}" if code and len(code.split()) == 1 else "Provider error",
        meaning=meaning,
        fix="Look at the provider's raw answer in the timeline; if it keeps happening, "
        "give the provider the provider message id shown here.",
        code=code,
        family="unknown",
        known=False,
        reference_url=reference_url,
    )


class ExplainedMessage(Protocol):
    """What :func:`explain` reads of a message (a msglog.models.Message)."""

    @property
    def channel(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def status_reason(self) -> str: ...
    @property
    def error_code(self) -> str: ...
    @property
    def error_message(self) -> str: ...


def explain(message: ExplainedMessage, *, suppression_reason: str = "") -> Explanation | None:
    """The plain-words explanation of why `message` did not (fully) succeed, or None.

    A known provider error code wins over our status, because it is the more specific
    word (a delivered multi-segment SMS keeps its failed segment's code, and that is
    explained). A never-sent status explains itself unless a known code says more; an
    anymail reject reason may sit in the status reason. `suppression_reason` is the
    suppression list's why, for a suppressed message, when the caller looked it up.
    """
    found = explain_code(
        message.error_code,
        message.error_message,
        channel=message.channel,
        provider=message.provider,
    )
    reason = (message.status_reason or "").strip().lower()
    if found is None and message.channel != Channel.SMS and (Family.ANYMAIL, reason) in ERRORS:
        found = _explanation(Family.ANYMAIL, reason, reason)
    if (Family.STATUS, message.status) in ERRORS and (found is None or not found.known):
        found = _explanation(Family.STATUS, message.status, "")
        if message.status == Status.SUPPRESSED and (suppression_reason or message.status_reason):
            why = suppression_reason or message.status_reason
            found = replace(found, meaning=f"{found.meaning} Why: {why}.")
    return found
