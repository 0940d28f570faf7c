"""Demo data for ``manage.py seed_demo``: three companies and an honest log.

Everything is generated in memory from a fixed seed and written in bulk.
Each message gets a realistic timeline of StatusEvents, and its stored status fields are
exactly what :func:`msglog.rules.statuses.derive` computes from those events, so the demo shows
what the product would really have recorded. Sends are simulated in time order per
company, applying the send checks (channel, address, suppression list, credits), so
a hard bounce suppresses the address for later sends and a company that runs out of SMS
credits really stops sending SMS.

Idempotent: companies, users, memberships, templates and contacts are looked up before
they are created; a company's messages, batches, events, suppressions and ledger entries
are generated only while it has no messages at all.

The demo never reaches a real person: email addresses use the reserved example domains
and phone numbers the ranges reserved for fiction (555-01XX in North America, 0491 570
XXX in Australia), because the embedded worker may go on to send the queued demo
messages with whatever provider is configured.
"""

from __future__ import annotations

import html
import itertools
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import get_hasher, make_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, models, transaction
from django.db.models import Sum
from django.utils import timezone
from django_scopes import scopes_disabled

from companies.models import Company, Contact, CreditLedgerEntry, Membership
from companies.roles import Role
from msglog.models import Batch, Message, StatusEvent, Suppression
from msglog.rules.dedupe import dedupe_key
from msglog.rules.kinds import Category, Channel, MessageType
from msglog.rules.segments import count_segments
from msglog.rules.statuses import EventFact, Status, derive
from msglog.services import rollups
from msglog.services.batch_counters import counters_for
from msglog.services.bulk_writes import reserve_ids
from msglog.services.sending import Recipient, send
from templates_app.models import MessageTemplate, MessageTemplateVersion
from templates_app.rendering import render

SEED = 20250517
DEMO_DAYS = 45
CONTACTS_PER_COMPANY = 40
PROVIDER = "simulator"
CHUNK = 1000
SYSTEM = StatusEvent.Source.SYSTEM
SIMULATOR = StatusEvent.Source.SIMULATOR

# --------------------------------------------------------------------------------------
# The cast
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanySpec:
    """One demo company: its settings, its trade's vocabulary and how busy it is."""

    slug: str
    name: str
    handle: str  # usernames are "<role>@<handle>"
    sms_enabled: bool
    contracted: bool
    retention_days: int
    tracking_enabled: bool
    timezone: str
    region: str
    area_codes: tuple[str, ...]  # "" for Australian mobiles
    sms_sender: str
    service: str
    practitioners: tuple[str, ...]
    business_phone: str
    site: str
    address: str
    package: str
    prices: tuple[int, ...]
    weekday_weights: tuple[float, ...]  # Monday..Sunday
    volume: int  # one-off messages over the demo period (batches come on top)
    sms_share: float
    top_ups: tuple[tuple[int, int], ...]  # (days ago, credits bought)
    staff: tuple[tuple[str, str, str], ...]  # (role, first name, last name)


COMPANIES: tuple[CompanySpec, ...] = (
    CompanySpec(
        slug="bright-smiles",
        name="Bright Smiles Dental",
        handle="brightsmiles",
        sms_enabled=True,
        contracted=True,
        retention_days=365,
        tracking_enabled=True,
        timezone="America/New_York",
        region="US",
        area_codes=("212", "347", "646", "718", "917"),
        sms_sender="+12125550100",
        service="check-up",
        practitioners=("Dr. Emily Carter", "Dr. Raj Patel", "Dr. Sofia Alvarez", "Hannah Kim"),
        business_phone="(212) 555-0100",
        site="brightsmiles.example",
        address="240 W 72nd St, New York, NY",
        package="Whitening Plus package",
        prices=(95, 120, 150, 180, 240, 310),
        weekday_weights=(1.0, 1.0, 1.0, 1.0, 0.9, 0.35, 0.1),
        volume=2300,
        sms_share=0.5,
        top_ups=((46, 2000), (17, 2000)),
        staff=(
            (Role.ADMIN, "Diana", "Reyes"),
            (Role.SUPPORT, "Marcus", "Lee"),
            (Role.ACCOUNTANT, "Priya", "Shah"),
            (Role.VIEWER, "Tom", "Becker"),
        ),
    ),
    CompanySpec(
        slug="northside-physio",
        name="Northside Physio",
        handle="northside",
        sms_enabled=False,  # the channel-disabled company: all its SMS are channel_disabled
        contracted=False,
        # The default is 30 days, but the demo spans 45: with 30 the retention task would
        # delete a third of the demo on its first run.
        retention_days=60,
        tracking_enabled=True,
        timezone="Australia/Sydney",
        region="AU",
        area_codes=("",),
        sms_sender="NSPhysio",
        service="physio session",
        practitioners=("Liam Walsh", "Chloe Nguyen", "Aarav Mehta"),
        business_phone="(02) 5550 1234",
        site="northsidephysio.example",
        address="18 Miller St, North Sydney NSW",
        package="5-session rehab pack",
        prices=(85, 95, 110, 150),
        weekday_weights=(1.0, 1.0, 1.0, 1.0, 0.9, 0.45, 0.05),
        volume=1250,
        sms_share=0.25,
        top_ups=((60, 100),),
        staff=(
            (Role.ADMIN, "Grace", "O'Brien"),
            (Role.SUPPORT, "Noah", "Tran"),
            (Role.ACCOUNTANT, "Isla", "Murray"),
            (Role.VIEWER, "Jack", "Cooper"),
        ),
    ),
    CompanySpec(
        slug="lakeview-salon",
        name="Lakeview Salon",
        handle="lakeview",
        sms_enabled=True,
        contracted=False,
        retention_days=60,  # 60, not the default 30, so all 45 demo days stay visible
        tracking_enabled=False,  # no open/click tracking: its emails stop at "delivered"
        timezone="America/Chicago",
        region="US",
        area_codes=("312", "773", "872"),
        sms_sender="+13125550100",
        service="appointment",
        practitioners=("Mia", "Jasmine", "Carlos", "Olivia"),
        business_phone="(312) 555-0188",
        site="lakeviewsalon.example",
        address="3150 N Broadway, Chicago, IL",
        package="5 blow-dry bundle",
        prices=(35, 55, 75, 120, 160),
        weekday_weights=(0.3, 0.8, 1.0, 1.0, 1.0, 1.0, 0.25),
        volume=1150,
        sms_share=0.55,
        # Too few credits for its traffic: it runs dry a week or so before "now", after
        # which its SMS end as insufficient_credits.
        top_ups=((46, 400), (24, 250)),
        staff=(
            (Role.ADMIN, "Sofia", "Martinez"),
            (Role.SUPPORT, "Ethan", "Brooks"),
            (Role.ACCOUNTANT, "Ava", "Kowalski"),
            (Role.VIEWER, "Lucas", "Green"),
        ),
    ),
)

ROLE_PASSWORDS: dict[str, str] = {role: f"demo-{role}" for role in Role.values}
OPERATOR = ("operator", "demo-operator", "Olga", "Operator")
# An outside bookkeeper who keeps the books of two of the companies.
BOOKKEEPER = ("bookkeeper@demo", "demo-bookkeeper", "Morgan", "Ellis")
BOOKKEEPER_OF = (("bright-smiles", Role.ACCOUNTANT), ("lakeview-salon", Role.ACCOUNTANT))


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    company: str
    role: str


def logins() -> list[Login]:
    """Every demo login, as printed at the end of each run."""
    rows = [Login(OPERATOR[0], OPERATOR[1], "(all companies)", "platform operator")]
    for spec in COMPANIES:
        for role, _first, _last in spec.staff:
            rows.append(Login(f"{role}@{spec.handle}", ROLE_PASSWORDS[role], spec.name, role))
    names = {spec.slug: spec.name for spec in COMPANIES}
    for slug, role in BOOKKEEPER_OF:
        rows.append(Login(BOOKKEEPER[0], BOOKKEEPER[1], names[slug], role))
    return rows


def format_logins(rows: Iterable[Login]) -> str:
    """The logins as a plain-text table."""
    header = ("username", "password", "company", "role")
    table = [header, *((r.username, r.password, r.company, r.role) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------------------
# Templates. [BIZ]-style tokens are filled per company when the template is created;
# {{ first_name }}-style placeholders are filled per message.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    channel: str
    category: str
    message_type: str
    weight: float  # how often one-off messages use it (0: batches only)
    subject: str = ""
    text: str = ""  # SMS body, or the email's paragraphs separated by blank lines
    button: tuple[str, str] | None = None  # (label, url) for emails
    v2_subject: str = ""  # a second published version, when set
    v2_text: str = ""


E, S = Channel.EMAIL, Channel.SMS
C, T = Category, MessageType
# fmt: off
TEMPLATES: tuple[TemplateSpec, ...] = (
    TemplateSpec(
        "Appointment confirmation", E, C.TRANSACTIONAL, T.CONFIRMATION, 14,
        subject="Your [SERVICE] on {{ appointment_date }} is confirmed",
        text="Hi {{ first_name }},\n\nYour [SERVICE] at [BIZ] is confirmed for "
        "{{ appointment_date }} at {{ appointment_time }} with {{ practitioner }}.\n\n"
        "Need to change it? Call us on [PHONE] or reply to this email.",
        button=("Manage your booking", "{{ link }}"),
        v2_subject="Confirmed: {{ appointment_date }} at {{ appointment_time }} "
        "with {{ practitioner }}",
        v2_text="Hi {{ first_name }},\n\nYour [SERVICE] at [BIZ] is confirmed for "
        "{{ appointment_date }} at {{ appointment_time }} with {{ practitioner }}.\n\n"
        "Please arrive 10 minutes early. You will find us at [ADDRESS].\n\n"
        "Need to change it? Call us on [PHONE] or reply to this email.",
    ),
    TemplateSpec(
        "Appointment reminder (email)", E, C.NOTIFICATION, T.REMINDER, 12,
        subject="Reminder: your [SERVICE] on {{ appointment_date }} at {{ appointment_time }}",
        text="Hi {{ first_name }},\n\nThis is a friendly reminder of your [SERVICE] with "
        "{{ practitioner }} on {{ appointment_date }} at {{ appointment_time }}.\n\n"
        "If you can no longer make it, please let us know at least 24 hours ahead.",
        button=("Confirm or reschedule", "{{ link }}"),
    ),
    TemplateSpec(
        "Thank you for your visit", E, C.SERVICE, T.THANK_YOU, 7,
        subject="Thanks for visiting [BIZ], {{ first_name }}",
        text="Hi {{ first_name }},\n\nThank you for coming in today. We hope you are happy "
        "with your [SERVICE] with {{ practitioner }}.\n\n"
        "Have a minute? Tell us how we did, it helps us a lot.",
        button=("Leave feedback", "{{ link }}"),
    ),
    TemplateSpec(
        "Invoice", E, C.TRANSACTIONAL, T.INVOICE, 5,
        subject="Invoice {{ invoice_number }} from [BIZ]",
        text="Hi {{ first_name }},\n\nPlease find your invoice {{ invoice_number }} for "
        "{{ amount }}. Payment is due by {{ due_date }}.\n\n"
        "Questions about your bill? Reply to this email or call [PHONE].",
        button=("View and pay invoice", "{{ link }}"),
    ),
    TemplateSpec(
        "Payment receipt", E, C.TRANSACTIONAL, T.PAYMENT_RECEIPT, 5,
        subject="Receipt for your payment of {{ amount }}",
        text="Hi {{ first_name }},\n\nWe received your payment of {{ amount }} for invoice "
        "{{ invoice_number }}. Thank you!\n\nKeep this email for your records.",
        button=("Download receipt (PDF)", "{{ link }}"),
    ),
    TemplateSpec(
        "Package purchase", E, C.TRANSACTIONAL, T.PACKAGE_PURCHASE, 1.5,
        subject="Your [PACKAGE] is ready to use",
        text="Hi {{ first_name }},\n\nThank you for buying the [PACKAGE] ({{ amount }}). "
        "Your sessions are ready to book whenever suits you.",
        button=("Book your first session", "{{ link }}"),
    ),
    TemplateSpec(
        "Appointment cancelled (email)", E, C.TRANSACTIONAL, T.CANCELLATION, 2,
        subject="Your appointment on {{ appointment_date }} has been cancelled",
        text="Hi {{ first_name }},\n\nYour [SERVICE] on {{ appointment_date }} at "
        "{{ appointment_time }} has been cancelled. We hope to see you again soon.",
        button=("Book a new time", "{{ link }}"),
    ),
    TemplateSpec(
        "Monthly newsletter", E, C.MARKETING, T.MARKETING, 1,
        subject="[BIZ] news: what's new this month",
        text="Hi {{ first_name }},\n\nThis month at [BIZ]: new evening hours on Thursdays, "
        "a warm welcome to {{ practitioner }}, and 15% off the [PACKAGE] until the end of "
        "the month.\n\nYou receive this because you are a client of [BIZ]. "
        "Unsubscribe: {{ unsubscribe_link }}",
        button=("Book now", "{{ link }}"),
    ),
    TemplateSpec(
        "Holiday opening hours", E, C.NOTIFICATION, T.CUSTOM, 0,
        subject="Holiday opening hours at [BIZ]",
        text="Hi {{ first_name }},\n\nOver the coming public holiday [BIZ] will be closed "
        "on Monday. We are open as usual from Tuesday.\n\nNeed us urgently? Call [PHONE].",
    ),
    TemplateSpec(
        "Appointment reminder (SMS)", S, C.NOTIFICATION, T.REMINDER, 20,
        text="Hi {{ first_name }}, reminder: your [SERVICE] at [BIZ] is on "
        "{{ appointment_date }} at {{ appointment_time }}. Reply C to confirm or call "
        "[PHONE] to reschedule.",
    ),
    TemplateSpec(
        "Confirmation request (SMS)", S, C.NOTIFICATION, T.CONFIRMATION_REQUEST, 8,
        text="[BIZ]: Hi {{ first_name }}, please confirm your [SERVICE] on "
        "{{ appointment_date }} at {{ appointment_time }} by replying YES. Reply STOP to "
        "opt out.",
    ),
    TemplateSpec(
        "Booking confirmation (SMS)", S, C.TRANSACTIONAL, T.CONFIRMATION, 8,
        text="Booked! {{ first_name }}, see you {{ appointment_date }} at "
        "{{ appointment_time }} with {{ practitioner }}. [BIZ], [ADDRESS]",
    ),
    TemplateSpec(
        "Reschedule notice (SMS)", S, C.TRANSACTIONAL, T.RESCHEDULE, 3,
        text="Hi {{ first_name }}, your [SERVICE] has moved to {{ appointment_date }} at "
        "{{ appointment_time }}. Not suitable? Call [PHONE]. [BIZ]",
    ),
    TemplateSpec(
        "Cancellation (SMS)", S, C.TRANSACTIONAL, T.CANCELLATION, 2,
        text="Hi {{ first_name }}, your [SERVICE] on {{ appointment_date }} is cancelled. "
        "Book again at https://[SITE]/book. [BIZ]",
    ),
    TemplateSpec(
        "Birthday greeting (SMS)", S, C.MARKETING, T.BIRTHDAY, 2,
        # The emoji makes it UCS-2: 70 characters per segment instead of 160.
        text="Happy birthday, {{ first_name }}! \U0001f382 Enjoy 15% off your next visit at "
        "[BIZ] this month. Reply STOP to opt out.",
    ),
    TemplateSpec(
        "Waitlist opening (SMS)", S, C.NOTIFICATION, T.WAITLIST, 2,
        text="Good news {{ first_name }}! A spot opened on {{ appointment_date }} at "
        "{{ appointment_time }}. Reply YES within 30 min to take it. [BIZ]",
    ),
    TemplateSpec(
        "Recall reminder (SMS)", S, C.SERVICE, T.REMINDER, 3,
        text="Hi {{ first_name }}, it has been 6 months since your last [SERVICE] at [BIZ]. "
        "Book online at https://[SITE]/book or call [PHONE]. Reply STOP to opt out.",
    ),
    TemplateSpec(
        "Special offer (SMS)", S, C.MARKETING, T.MARKETING, 0.5,
        # The en dash is not GSM-7: a classic way to pay for twice the segments.
        text="[BIZ]: this weekend only \u2013 20% off the [PACKAGE]! Book at "
        "https://[SITE]/offer or reply BOOK. Reply STOP to opt out.",
    ),
)
# fmt: on
del E, S, C, T
TEMPLATE_BY_NAME = {spec.name: spec for spec in TEMPLATES}


def _fill_company(text: str, spec: CompanySpec) -> str:
    tokens = {
        "[BIZ]": spec.name,
        "[SERVICE]": spec.service,
        "[PHONE]": spec.business_phone,
        "[SITE]": spec.site,
        "[ADDRESS]": spec.address,
        "[PACKAGE]": spec.package,
    }
    for token, value in tokens.items():
        text = text.replace(token, value)
    return text


def _email_bodies(paragraphs: str, button: tuple[str, str] | None) -> tuple[str, str]:
    """(text, html) of an email from its paragraphs; both keep the placeholders."""
    parts = paragraphs.split("\n\n")
    text = paragraphs
    if button:
        text += f"\n\n{button[0]}: {button[1]}"
    text += "\n\n[BIZ]\n[ADDRESS] | [PHONE]"
    body = "".join(f'<p style="margin:0 0 14px">{html.escape(p, quote=False)}</p>' for p in parts)
    if button:
        body += (
            f'<p style="margin:22px 0"><a href="{button[1]}" style="background:#0f766e;'
            'color:#ffffff;padding:10px 18px;border-radius:6px;text-decoration:none">'
            f"{html.escape(button[0], quote=False)}</a></p>"
        )
    page = (
        '<div style="font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;'
        'color:#1f2937;max-width:560px;margin:0 auto">'
        '<h2 style="color:#0f766e;font-size:20px">[BIZ]</h2>'
        f"{body}"
        '<p style="font-size:12px;color:#6b7280;border-top:1px solid #e5e7eb;padding-top:10px">'
        "[BIZ] &middot; [ADDRESS] &middot; [PHONE]</p></div>"
    )
    return text, page


def template_content(tspec: TemplateSpec, spec: CompanySpec, v2: bool = False) -> dict:
    """The subject, text and HTML a company's copy of a template holds."""
    subject = tspec.v2_subject if v2 else tspec.subject
    body = tspec.v2_text if v2 else tspec.text
    if tspec.channel == Channel.SMS:
        return {"subject": "", "text": _fill_company(body, spec), "html": ""}
    text, page = _email_bodies(body, tspec.button)
    return {
        "subject": _fill_company(subject, spec),
        "text": _fill_company(text, spec),
        "html": _fill_company(page, spec),
    }


# --------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Olivia Liam Emma Noah Amelia Oliver Ava Elijah Sophia James Isabella William Mia "
    "Benjamin Charlotte Lucas Harper Henry Evelyn Theodore Aisha Mateo Priya Daniel Chloe "
    "Jack Zoe Samuel Grace Leo Nora Ethan Hannah Omar Layla Wei Mei Carlos Lucia Diego "
    "Fatima Ahmed Yuki Kenji Ingrid Lars Siobhan Declan Nia Kwame Ana Rafael Elena Ivan "
    "Sara David Rachel Aaron Maya Ruby Finn Isla Oscar Ella Hugo Alice Maria Jose Tariq "
    "Leila Anh Minh Chen Ravi Deepa Joanna Peter Lena Tom"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
    "Roberts Patel Kim Chen Singh Okafor Mensah Kowalski Novak Schmidt Muller Rossi "
    "Bianchi Dubois Laurent Silva Santos Costa Tanaka Sato Haddad Khan Ali O'Neill Murphy "
    "Kelly Byrne Walsh Fraser MacLeod Jensen Larsen Lindqvist Petrov Ivanova Cohen Levi"
)
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")


@dataclass
class Person:
    """A recipient: one of the company's contacts, or someone known only by address."""

    name: str
    first: str
    email: str
    phone: str
    contact: Contact | None = None


def _phone_numbers(spec: CompanySpec, rng: random.Random) -> list[str]:
    """Numbers reserved for fiction, valid to `phonenumbers`, in a seeded order."""
    if spec.region == "AU":
        numbers = [f"+61491570{n:03d}" for n in range(6, 160)]
    else:
        # 0100 is the company's own sender number.
        numbers = [f"+1{area}55501{n:02d}" for area in spec.area_codes for n in range(1, 100)]
    rng.shuffle(numbers)
    return numbers


def _people(spec: CompanySpec, count: int) -> list[Person]:
    """The company's contacts (the first CONTACTS_PER_COMPANY) and its other recipients."""
    rng = random.Random(f"{SEED}:{spec.slug}:people")
    phones = _phone_numbers(spec, rng)
    seen_emails: set[str] = set()
    people = []
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local_last = re.sub(r"[^a-z]", "", last.lower())
        style = rng.randrange(4)
        local = (
            f"{first.lower()}.{local_last}",
            f"{first.lower()}{local_last}",
            f"{first[0].lower()}.{local_last}",
            f"{first.lower()}_{local_last}{rng.randrange(10, 99)}",
        )[style]
        email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
        n = 2
        while email in seen_emails:
            email = f"{local}{n}@{email.split('@')[1]}"
            n += 1
        seen_emails.add(email)
        # Most people have both; some gave only one of them.
        # Most people have both; some gave only one. The first four contacts (the
        # designated stories: bad number, STOP, bounce, complaint) have both.
        has = rng.random() if i >= 4 else 1.0
        phone = phones.pop() if phones and has > 0.08 else ""
        if has < 0.16 and phone:
            email = ""
        people.append(Person(f"{first} {last}", first, email, phone))
    # Contact 0 was typed in with a digit missing: every SMS to it is invalid_recipient.
    people[0].phone = "+6149157001" if spec.region == "AU" else f"+1{spec.area_codes[0]}555010"
    return people


# --------------------------------------------------------------------------------------
# Outcomes and their provider vocabulary
# --------------------------------------------------------------------------------------

TWILIO_ERRORS = {
    "30001": "Queue overflow",
    "30003": "Unreachable destination handset",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered (carrier violation)",
    "30008": "Unknown error",
    "21211": "Invalid 'To' Phone Number",
    "21408": "Permission to send an SMS has not been enabled for the region indicated by "
    "the 'To' number",
    "21610": "Attempt to send to unsubscribed recipient",
}
UNDELIVERED_CODES = (("30003", 40), ("30005", 20), ("30006", 20), ("30007", 14), ("30008", 6))
HARD_BOUNCES = (
    ("550 5.1.1", "User unknown"),
    ("550 5.1.1", "The email account that you tried to reach does not exist"),
    ("550 5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
    ("550 5.2.1", "The email account that you tried to reach is disabled"),
    ("550 5.4.1", "Recipient address rejected: Access denied"),
)
SOFT_BOUNCES = (
    ("452 4.2.2", "The email account that you tried to reach is over quota"),
    ("451 4.7.1", "Greylisted, please try again in 5 minutes"),
    ("421 4.7.0", "Temporary System Problem. Try again later"),
)
SMS_OUTCOMES = {
    "delivered": 880,
    "undelivered": 60,
    "sent": 15,  # the carrier never sent a delivery report
    "failed_callback": 9,
    "failed_invalid_to": 6,
    "failed_stop": 4,
    "failed_region": 2,
}
EMAIL_OUTCOMES = {
    "delivered": 560,
    "opened": 230,
    "clicked": 80,
    "deferred_delivered": 30,
    "bounced": 25,
    "delivered_bounced": 5,
    "deferred_bounced": 4,
    "failed_retries": 5,
    "failed_timeout": 2,
    "complained": 3,
    "sent": 5,
}
MARKETING_EMAIL_OUTCOMES = {
    **EMAIL_OUTCOMES,
    "delivered": 470,
    "opened": 260,
    "clicked": 110,
    "complained": 12,
}
# Outcomes that put the address on the suppression list. The company's contacts are
# spared them at random (the designated contacts get them on purpose), so each contact's
# history tells one clear story and the forced batch results are not disturbed.
SUPPRESSING = frozenset(
    {"bounced", "delivered_bounced", "deferred_bounced", "complained", "failed_stop"}
)
TRACKED = frozenset({"opened", "clicked"})
OPEN_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Microsoft Outlook 16.0.17328)",
)
# Local-time weight of each hour: business hours, a lunch dip, quiet nights.
HOUR_WEIGHTS = (
    0.03,
    0.02,
    0.02,
    0.02,
    0.03,
    0.08,
    0.25,
    0.6,
    1.2,
    1.6,
    1.6,
    1.5,
    1.2,
    1.3,
    1.5,
    1.5,
    1.3,
    1.1,
    0.8,
    0.55,
    0.45,
    0.3,
    0.15,
    0.06,
)
APPOINTMENT_TYPES = frozenset(
    {
        MessageType.CONFIRMATION,
        MessageType.REMINDER,
        MessageType.CONFIRMATION_REQUEST,
        MessageType.CANCELLATION,
        MessageType.RESCHEDULE,
        MessageType.THANK_YOU,
        MessageType.WAITLIST,
    }
)
CUSTOM_SMS = (
    "Hi {first}, you left a scarf at reception today. We will keep it for you. [BIZ]",
    "Hi {first}, {practitioner} is running about 15 minutes late today, sorry! [BIZ]",
    "Hi {first}, our card machine is down today, please bring cash or pay online. [BIZ]",
    "Hi {first}, your paperwork is ready to collect at the front desk. [BIZ]",
)
CUSTOM_EMAIL = (
    (
        "Your records request",
        "Hi {first},\n\nAs requested, we have prepared a copy of your "
        "records. You can collect it at reception or we can post it to you.\n\n[BIZ]",
    ),
    (
        "Following up on your call",
        "Hi {first},\n\nThanks for calling today. As discussed, "
        "{practitioner} will see you at your next visit.\n\nKind regards,\n[BIZ]",
    ),
)
# Over 400 GSM-7 characters: three segments, the one whose reports disagree.
MULTI_SEGMENT_SMS = (
    "Hi {first}, here is your treatment plan summary from [BIZ]. Session 1: assessment and "
    "cleaning (60 min). Session 2: fillings, upper left (45 min). Session 3: review and "
    "polish (30 min). Please bring your insurance card to each visit and arrive 10 minutes "
    "early. If anything is unclear, call [PHONE] on weekdays between 8am and 6pm and ask "
    "for the front desk. We look forward to seeing you soon."
)


# The designated contacts' stories, in every company: (contact index, days ago, local
# hour, minute, channel, template, outcome). Contact 0 has a mistyped phone number.
DESIGNATED = (
    (1, 30, 10, 15, Channel.SMS, "Appointment reminder (SMS)", "failed_stop"),
    (2, 28, 9, 40, Channel.EMAIL, "Appointment reminder (email)", "bounced:user_unknown"),
    (3, 12, 11, 5, Channel.EMAIL, "Monthly newsletter", "complained"),
)
# One of each rarer outcome at Bright Smiles, so no status or story depends on the dice.
SHOWCASES = (
    (10, 14, 20, Channel.EMAIL, "Invoice", "deferred_bounced"),
    (7, 9, 12, Channel.EMAIL, "Payment receipt", "failed_retries"),
    (5, 15, 2, Channel.EMAIL, "Thank you for your visit", "failed_timeout"),
    (5, 11, 30, Channel.SMS, "Booking confirmation (SMS)", "failed_invalid_to"),
    (4, 16, 45, Channel.EMAIL, "Appointment confirmation", "deferred_delivered"),
    (3, 13, 10, Channel.EMAIL, "Appointment confirmation", "delivered_bounced"),
    (2, 10, 0, Channel.SMS, "Appointment reminder (SMS)", "sent"),
    (2, 12, 30, Channel.EMAIL, "Monthly newsletter", "opened"),
    (1, 9, 50, Channel.EMAIL, "Monthly newsletter", "clicked"),
    (1, 15, 20, Channel.SMS, "Appointment reminder (SMS)", "undelivered:30005"),
)

# --------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSpec:
    key: str
    name: str
    template: str
    state: str
    start: tuple[int, int, int] = (0, 0, 0)  # (days ago, local hour, minute)
    size: int = 0
    interval: float = 2.0  # seconds between two sends: the rate limit
    include: tuple[int, ...] = ()  # designated contacts (by index) always among recipients
    forced: tuple[str, ...] = ()  # outcomes of the other recipients, in order
    restart_of: str = ""
    stop_after: float = 0.0  # seconds after the start that an admin pressed Stop


# fmt: off
BATCHES: dict[str, tuple[BatchSpec, ...]] = {
    "bright-smiles": (
        BatchSpec(
            "recall", "6-month recall reminders", "Recall reminder (SMS)", Batch.State.FINISHED,
            start=(9, 10, 0), size=18, interval=3.0, include=(0, 1),
            # With the invalid number (0) and the opted-out one (1): 13/18 delivered.
            forced=("delivered",) * 13
            + ("undelivered:30003", "undelivered:30006", "failed_callback:30008"),
        ),
        BatchSpec(
            "recall-restart", "6-month recall reminders (restart)", "Recall reminder (SMS)",
            Batch.State.FINISHED, start=(8, 11, 30), interval=3.0,
            forced=("delivered", "delivered", "undelivered:30003"), restart_of="recall",
        ),
        BatchSpec(
            "newsletter-april", "April newsletter", "Monthly newsletter", Batch.State.FINISHED,
            start=(25, 10, 0), size=36, interval=2.0,
        ),
        BatchSpec(
            "whitening", "Spring whitening offer", "Monthly newsletter", Batch.State.RUNNING,
            size=36, interval=15.0,
        ),
        BatchSpec(
            "hygiene", "Hygiene check-up reminders", "Appointment reminder (SMS)",
            Batch.State.SCHEDULED, size=24, interval=2.0,
        ),
    ),
    "northside-physio": (
        BatchSpec(
            "winter", "Winter newsletter", "Monthly newsletter", Batch.State.STOPPED,
            start=(3, 10, 0), size=38, interval=4.0, include=(2,), stop_after=46.0,
        ),
        BatchSpec(
            "easter", "Easter opening hours", "Holiday opening hours", Batch.State.FINISHED,
            start=(15, 9, 0), size=30, interval=2.0,
        ),
    ),
    "lakeview-salon": (
        BatchSpec(
            "weekend", "Weekend blow-dry special", "Special offer (SMS)", Batch.State.FINISHED,
            start=(3, 17, 0), size=30, interval=2.0,
        ),
        BatchSpec(
            "holiday", "Holiday hours notice", "Holiday opening hours", Batch.State.FINISHED,
            start=(20, 9, 0), size=35, interval=2.0,
        ),
    ),
}
# fmt: on


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


@dataclass
class SeedReport:
    """What a run did: per company, how many rows of each kind it created."""

    created: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: bool = False  # --once and the demo was already there
    seconds: float = 0.0


def demo_present() -> bool:
    """Whether every demo company exists with its log, and the operator account."""
    with scopes_disabled():
        companies = Company.objects.filter(slug__in=[s.slug for s in COMPANIES])
        if companies.count() != len(COMPANIES):
            return False
        with_messages = Message.objects.filter(company__in=companies).values("company_id")
        usernames = {row.username for row in logins()}
        users = get_user_model().objects.filter(username__in=usernames)
        return with_messages.distinct().count() == len(COMPANIES) and users.count() == len(
            usernames
        )


def seed_demo(*, once: bool = False, now: datetime | None = None) -> SeedReport:
    """Create whatever of the demo is missing (see the module docstring)."""
    started = time.monotonic()
    report = SeedReport()
    if once and demo_present():
        report.skipped = True
        return report
    now = now or timezone.now()
    with scopes_disabled(), transaction.atomic():
        users = _ensure_users(_ensure_companies(now))
        for spec in COMPANIES:
            company = Company.objects.get(slug=spec.slug)
            versions = _ensure_templates(spec, company, users, now)
            contacts = _ensure_contacts(spec, company, now)
            if not Message.objects.filter(company=company).exists():
                generator = _CompanyLog(spec, company, users, versions, contacts, now)
                report.created[spec.name] = generator.run()
                rollups.rebuild([company.pk])  # the log was written in bulk, past the counters
    report.seconds = time.monotonic() - started
    return report


# --------------------------------------------------------------------------------------
# Companies, users, templates, contacts (looked up first, so a second run adds nothing)
# --------------------------------------------------------------------------------------


def _ensure_companies(now: datetime) -> dict[str, Company]:
    companies = {}
    for spec in COMPANIES:
        company, created = Company.objects.get_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "sms_enabled": spec.sms_enabled,
                "contracted": spec.contracted,
                "retention_days": spec.retention_days,
                "tracking_enabled": spec.tracking_enabled,
                "default_region": spec.region,
                "timezone": spec.timezone,
                "sms_sender": spec.sms_sender,
                "email_sender": f"{spec.name} <hello@{spec.site}>",
            },
        )
        if created:  # auto_now_add wrote "now"; a customer for a while reads better
            Company.objects.filter(pk=company.pk).update(created_at=now - timedelta(days=400))
        companies[spec.slug] = company
    return companies


def _password_hash(password: str) -> str:
    """A hash of a demo password that is quick to make.

    The passwords are printed on every run, so a slow hash protects nothing and would
    cost seconds at every start; Django upgrades the hash to full strength at the first
    login. Falls back to the configured default when PBKDF2 is not enabled.
    """
    try:
        hasher = get_hasher("pbkdf2_sha256")
    except ValueError:
        return make_password(password)
    return hasher.encode(password, hasher.salt(), iterations=1000)


def _ensure_users(companies: dict[str, Company]) -> dict[str, object]:
    """Every demo user, by username, with the printed password and memberships."""
    user_model = get_user_model()
    wanted: list[tuple[str, str, str, str, list[tuple[str, str]], bool]] = [
        (*OPERATOR, [], True),
        (*BOOKKEEPER, list(BOOKKEEPER_OF), False),
    ]
    for spec in COMPANIES:
        for role, first, last in spec.staff:
            wanted.append(
                (
                    f"{role}@{spec.handle}",
                    ROLE_PASSWORDS[role],
                    first,
                    last,
                    [(spec.slug, role)],
                    False,
                )
            )
    users = {}
    for username, password, first, last, memberships, superuser in wanted:
        user, _ = user_model.objects.get_or_create(username=username)
        user.first_name, user.last_name = first, last
        user.email = user.email or f"{first}.{last}@example.com".lower().replace("'", "")
        user.is_active = True
        user.is_superuser = user.is_staff = superuser
        # Reset on every run, so the printed table is always true.
        user.password = _password_hash(password)
        user.save()
        users[username] = user
        for slug, role in memberships:
            membership, created = Membership.objects.get_or_create(
                user=user, company=companies[slug], defaults={"role": role}
            )
            if not created and membership.role != role:
                membership.role = role
                membership.save(update_fields=["role"])
    return users


def _ensure_templates(
    spec: CompanySpec, company: Company, users: dict, now: datetime
) -> dict[str, list[MessageTemplateVersion]]:
    """The company's templates and their versions (oldest first), by template name."""
    admin = users[f"{Role.ADMIN}@{spec.handle}"]
    for tspec in TEMPLATES:
        content = template_content(tspec, spec)
        template, created = MessageTemplate.objects.get_or_create(
            company=company,
            name=tspec.name,
            defaults={
                "channel": tspec.channel,
                "category": tspec.category,
                "message_type": tspec.message_type,
                **content,
            },
        )
        if not created or template.versions.exists():
            continue
        first = template.publish(user=admin)
        # Versions are immutable to users; dating the seeded ones back is part of seeding,
        # so messages older than v2 can honestly use v1.
        MessageTemplateVersion.objects.filter(pk=first.pk).update(
            created_at=now - timedelta(days=120)
        )
        if tspec.v2_text:
            for name, value in template_content(tspec, spec, v2=True).items():
                setattr(template, name, value)
            template.save()
            second = template.publish(user=admin)
            MessageTemplateVersion.objects.filter(pk=second.pk).update(
                created_at=now - timedelta(days=18)
            )
        MessageTemplate.objects.filter(pk=template.pk).update(created_at=now - timedelta(days=120))
    versions: dict[str, list[MessageTemplateVersion]] = defaultdict(list)
    for version in (
        MessageTemplateVersion.objects.filter(company=company)
        .select_related("template")
        .order_by("template_id", "number")
    ):
        versions[version.template.name].append(version)
    return versions


def _ensure_contacts(spec: CompanySpec, company: Company, now: datetime) -> list[Person]:
    """Everyone the demo sends to; the first CONTACTS_PER_COMPANY are stored as contacts."""
    people = _people(spec, 600)
    # Found by their reference, so a contact a user has since corrected (the demo invites
    # fixing contact 0's phone number) is kept, not created again.
    existing = {c.external_ref: c for c in Contact.objects.filter(company=company)}
    new = []
    for i, person in enumerate(people[:CONTACTS_PER_COMPANY]):
        ref = f"CL-{1001 + i}"
        contact = existing.get(ref)
        if contact is None:
            contact = Contact(
                company=company, name=person.name, email=person.email, phone=person.phone,
                external_ref=ref,
            )  # fmt: skip
            new.append(contact)
        else:  # the log goes to the contact's addresses as they are now
            person.name, person.email, person.phone = contact.name, contact.email, contact.phone
            person.first = contact.name.split(" ")[0]
        person.contact = contact
    if new:
        Contact.objects.bulk_create(new)
        # auto_now_add wrote "now"; clients were on file before the demo period.
        Contact.objects.filter(pk__in=[c.pk for c in new]).update(
            created_at=now - timedelta(days=180)
        )
    return people


# --------------------------------------------------------------------------------------
# One company's log
# --------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """A message to simulate: who, what, when, and (for showcases) how it must end."""

    seq: int
    created_at: datetime
    send_at: datetime  # when the send checks run and a worker picks it up
    channel: str
    person: Person
    template: str = ""  # template name; "" for a message typed by hand
    custom: tuple[str, str] = ("", "")  # (subject, text) of a hand-typed message
    outcome: str = ""  # forced outcome; "" draws one
    batch: str = ""
    scheduled_for: datetime | None = None
    cancel_at: datetime | None = None  # the batch was stopped at this time
    cancel_reason: str = ""
    created_by: object = None


@dataclass
class _Event:
    status: str
    at: datetime
    received: datetime
    source: str = SYSTEM
    event: str = ""
    error_code: str = ""
    error_message: str = ""
    reason: str = ""
    payload: dict = field(default_factory=dict)
    provider_event_id: str = ""
    accepted: bool = False  # reported under the provider's message id


class _CompanyLog:
    """Simulates one company's sends over the demo period and writes the result."""

    def __init__(
        self,
        spec: CompanySpec,
        company: Company,
        users: dict,
        versions: dict[str, list[MessageTemplateVersion]],
        people: list[Person],
        now: datetime,
    ) -> None:
        self.spec, self.company, self.users, self.now = spec, company, users, now
        self.versions = versions
        self.templates = {name: vs[-1].template for name, vs in versions.items()}
        self.people = people
        self.contacts = people[:CONTACTS_PER_COMPANY]
        self.pool = people[CONTACTS_PER_COMPANY:]
        self.rng = random.Random(f"{SEED}:{spec.slug}:log")
        self.tz = ZoneInfo(spec.timezone)
        self.start = now - timedelta(days=DEMO_DAYS)
        self.admin = users[f"{Role.ADMIN}@{spec.handle}"]
        self.support = users[f"{Role.SUPPORT}@{spec.handle}"]
        self.seq = 0
        self.plans: list[_Plan] = []
        self.batch_specs = {b.key: b for b in BATCHES.get(spec.slug, ())}
        self.batch_times: dict[str, dict[str, datetime | None]] = {}
        # Simulation state, in time order.
        # (channel, address) -> (since, reason, the message that caused it, note)
        self.suppressed: dict[tuple[str, str], tuple[datetime, str, Message, str]] = {}
        self.top_ups = sorted((self._local(days, 9, 5), credits) for days, credits in spec.top_ups)
        self.balance = 0
        self.applied_top_ups = 0
        self.charges: list[tuple[datetime, Message]] = []
        self.valid_cache: dict[str, bool] = {}
        self.invoice_no = 1040
        self.messages: list[Message] = []
        self.events: list[tuple[Message, _Event, str]] = []  # (message, event, dedupe key)
        self.batch_of: dict[int, str] = {}  # id(message) -> batch key
        self.handoff: dict[int, datetime] = {}  # id(message) -> last step of ours
        today = now.astimezone(self.tz).date()
        self._day_cum = list(
            _cumulative(
                spec.weekday_weights[(today - timedelta(days=d)).weekday()]
                for d in range(DEMO_DAYS)
            )
        )
        self._hour_cum = list(_cumulative(HOUR_WEIGHTS))

    # ---- time -------------------------------------------------------------------------

    def _local(self, days_ago: float, hour: int, minute: int) -> datetime:
        """A wall-clock time in the company's zone, `days_ago` local days back, as UTC."""
        day = self.now.astimezone(self.tz).date() - timedelta(days=days_ago)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz).astimezone(UTC)

    def _sample_time(self) -> datetime:
        """A send time weighted towards weekdays and business hours, in the past."""
        today = self.now.astimezone(self.tz).date()
        rng = self.rng
        while True:
            day = rng.choices(range(DEMO_DAYS), cum_weights=self._day_cum)[0]
            hour = rng.choices(range(24), cum_weights=self._hour_cum)[0]
            d = today - timedelta(days=day)
            local = datetime(
                d.year,
                d.month,
                d.day,
                hour,
                rng.randrange(60),
                rng.randrange(60),
                rng.randrange(1_000_000),
                tzinfo=self.tz,
            )
            at = local.astimezone(UTC)
            if self.start <= at <= self.now - timedelta(seconds=30):
                return at

    def _ms(self, low: float, high: float) -> timedelta:
        return timedelta(milliseconds=self.rng.uniform(low, high))

    # ---- planning ---------------------------------------------------------------------

    def _plan(self, **kwargs) -> _Plan:
        self.seq += 1
        kwargs.setdefault("send_at", kwargs["created_at"])
        plan = _Plan(seq=self.seq, **kwargs)
        self.plans.append(plan)
        return plan

    def _pick_person(self, channel: str, contacts_share: float = 0.25) -> Person:
        address = "phone" if channel == Channel.SMS else "email"
        group = self.contacts if self.rng.random() < contacts_share else self.pool
        while True:
            person = self.rng.choice(group)
            if getattr(person, address):
                return person

    def _plan_one_offs(self) -> None:
        sms_names = [t for t in TEMPLATES if t.channel == Channel.SMS and t.weight]
        email_names = [t for t in TEMPLATES if t.channel == Channel.EMAIL and t.weight]
        for _ in range(self.spec.volume):
            at = self._sample_time()
            channel = Channel.SMS if self.rng.random() < self.spec.sms_share else Channel.EMAIL
            person = self._pick_person(channel)
            if self.rng.random() < 0.02:  # typed by hand at the front desk
                text = self.rng.choice(CUSTOM_SMS) if channel == Channel.SMS else None
                subject, body = ("", text) if text else self.rng.choice(CUSTOM_EMAIL)
                self._plan(
                    created_at=at,
                    channel=channel,
                    person=person,
                    custom=(subject, body),
                    created_by=self.support,
                )
                continue
            choices = sms_names if channel == Channel.SMS else email_names
            tspec = self.rng.choices(choices, weights=[t.weight for t in choices])[0]
            created_by = self.support if self.rng.random() < 0.1 else None
            if tspec.message_type == MessageType.REMINDER and self.rng.random() < 0.15:
                # Queued ahead as a scheduled send; dispatched when due.
                created = max(self.start, at - timedelta(hours=self.rng.uniform(2, 40)))
                self._plan(
                    created_at=created,
                    send_at=at,
                    scheduled_for=at,
                    channel=channel,
                    person=person,
                    template=tspec.name,
                    created_by=created_by,
                )
            else:
                self._plan(
                    created_at=at,
                    channel=channel,
                    person=person,
                    template=tspec.name,
                    created_by=created_by,
                )

    def _plan_showcases(self) -> None:
        """Messages that must exist whatever the dice say: every status, every story."""
        sms, email = Channel.SMS, Channel.EMAIL
        c = self.contacts
        pool = [p for p in self.pool if p.email and p.phone]
        rng = self.rng
        for index, days, hour, minute, channel, template, outcome in DESIGNATED:
            self._plan(
                created_at=self._local(days, hour, minute), channel=channel, person=c[index],
                template=template, outcome=outcome,
            )  # fmt: skip
        if self.spec.slug == "bright-smiles":
            for days, hour, minute, channel, template, outcome in SHOWCASES:
                self._plan(
                    created_at=self._local(days, hour, minute), channel=channel,
                    person=rng.choice(pool), template=template, outcome=outcome,
                )  # fmt: skip
        # A message sent by hand to a mistyped address: invalid_recipient.
        typo = self.pool[5]
        self._plan(
            created_at=self._local(6, 10, 40),
            channel=email,
            person=Person(typo.name, typo.first, f"{typo.first.lower()}@example", ""),
            custom=CUSTOM_EMAIL[1],
            created_by=self.support,
        )
        # Tomorrow's reminders, scheduled now.
        tomorrow = self._local(-1, 8, 30)
        if tomorrow < self.now + timedelta(hours=2):
            tomorrow += timedelta(days=1)
        channel = sms if self.spec.sms_enabled else email
        template = (
            "Appointment reminder (SMS)" if channel == sms else "Appointment reminder (email)"
        )
        for i in range(4 if self.spec.slug == "bright-smiles" else 2):
            due = tomorrow + timedelta(minutes=7 * i)
            self._plan(
                created_at=self.now - timedelta(minutes=70 + 11 * i),
                send_at=due,
                scheduled_for=due,
                channel=channel,
                person=self._pick_person(channel, 0.5),
                template=template,
            )
        if self.spec.slug != "bright-smiles":
            return
        # Bright Smiles shows the live end of the pipeline, and the SMS whose segments'
        # delivery reports disagree (delivered overall, the failed segment's error kept).
        self._plan(
            created_at=self._local(2, 11, 15),
            channel=sms,
            person=next(p for p in self.contacts[4:] if p.phone),
            custom=("", MULTI_SEGMENT_SMS),
            outcome="multi_segment",
            created_by=self.support,
        )
        for seconds, channel, template, outcome in (
            (100, email, "Appointment confirmation", "sent"),
            (45, sms, "Booking confirmation (SMS)", "sending"),
            (20, sms, "Appointment reminder (SMS)", "queued"),
            (8, email, "Invoice", "queued"),
        ):
            self._plan(
                created_at=self.now - timedelta(seconds=seconds),
                channel=channel,
                person=self._pick_person(channel),
                template=template,
                outcome=outcome,
            )

    def _plan_batches(self) -> None:
        recipients_of: dict[str, list[tuple[Person, str]]] = {}
        for spec in self.batch_specs.values():
            tspec = TEMPLATE_BY_NAME[spec.template]
            address = "phone" if tspec.channel == Channel.SMS else "email"
            times: dict[str, datetime | None] = dict.fromkeys(
                ("created", "started", "scheduled", "stopped"), None
            )
            if spec.state == Batch.State.RUNNING:
                times["created"] = times["started"] = self.now - timedelta(minutes=6)
            elif spec.state == Batch.State.SCHEDULED:
                times["created"] = self.now - timedelta(hours=20)
                due = self._local(-2, 9, 0)
                times["scheduled"] = due
            else:
                times["created"] = times["started"] = self._local(*spec.start)
            if spec.stop_after:
                times["stopped"] = times["started"] + timedelta(seconds=spec.stop_after)
            self.batch_times[spec.key] = times

            if spec.restart_of:
                # A restart goes to the recipients whose messages failed in a retryable way.
                retry = ("undelivered", "failed_callback", "failed")
                people = [p for p, o in recipients_of[spec.restart_of] if o.split(":")[0] in retry]
                chosen = list(zip(people, spec.forced, strict=True))
            else:
                designated = [self.contacts[i] for i in spec.include]
                others = [
                    p for p in self.contacts[4:] if getattr(p, address) and p not in designated
                ]
                self.rng.shuffle(others)
                others = others[: spec.size - len(designated)]
                forced = list(spec.forced) + [""] * (len(others) - len(spec.forced))
                chosen = [(p, "") for p in designated] + list(zip(others, forced, strict=True))
                chosen.sort(key=lambda pair: pair[0].name)
            recipients_of[spec.key] = chosen

            base = times["scheduled"] or times["started"]
            stopped_by = self.admin.get_full_name()
            for i, (person, outcome) in enumerate(chosen):
                send_at = base + timedelta(seconds=spec.interval * i) + self._ms(0, 900)
                self._plan(
                    created_at=times["created"],
                    send_at=send_at,
                    channel=tspec.channel,
                    person=person,
                    template=spec.template,
                    outcome=outcome,
                    batch=spec.key,
                    scheduled_for=times["scheduled"],
                    cancel_at=times["stopped"],
                    cancel_reason=f"Batch stopped by {stopped_by}",
                    created_by=self.admin,
                )

    # ---- the send checks --------------------------------------------------------------

    def _valid(self, channel: str, address: str) -> bool:
        key = f"{channel}:{address}"
        if key not in self.valid_cache:
            if channel == Channel.SMS:
                try:
                    number = phonenumbers.parse(address, self.spec.region)
                    ok = phonenumbers.is_valid_number(number) and address == (
                        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                    )
                except phonenumbers.NumberParseException:
                    ok = False
            else:
                try:
                    validate_email(address)
                    ok = True
                except ValidationError:
                    ok = False
            self.valid_cache[key] = ok
        return self.valid_cache[key]

    def _credits_at(self, at: datetime) -> int:
        """The balance at `at`: credits bought by then, less what earlier sends took."""
        pending = self.top_ups[self.applied_top_ups :]
        for bought_at, credits in pending:
            if bought_at > at:
                break
            self.balance += credits
            self.applied_top_ups += 1
        return self.balance

    def _never_sent(self, msg: Message, at: datetime) -> tuple[str, str, str] | None:
        """(status, reason, error message) of the first failing check, if any."""
        channel, address = msg.channel, msg.to_address
        label = "SMS" if channel == Channel.SMS else "Email"
        enabled = (
            self.company.sms_enabled if channel == Channel.SMS else (self.company.email_enabled)
        )
        if not enabled:
            return (Status.CHANNEL_DISABLED, f"{label} is disabled for {self.company.name}", "")
        if not self._valid(channel, address):
            if channel == Channel.SMS:
                return (
                    Status.INVALID_RECIPIENT,
                    "Not a valid phone number",
                    f"{address} is not a valid phone number for region {self.spec.region}.",
                )
            return (
                Status.INVALID_RECIPIENT,
                "Not a valid email address",
                f"{address} is not a valid email address.",
            )
        found = self.suppressed.get((channel, address.lower()))
        if found and found[0] <= at:
            label = Suppression.Reason(found[1]).label
            return (Status.SUPPRESSED, f"On the suppression list: {label}", "")
        if channel == Channel.SMS:
            balance = self._credits_at(at)
            if balance < msg.segments:
                return (
                    Status.INSUFFICIENT_CREDITS,
                    f"Needs {msg.segments} SMS credit{'s' if msg.segments > 1 else ''}; "
                    f"balance {balance}",
                    "",
                )
        return None

    # ---- one message ------------------------------------------------------------------

    def _context(self, plan: _Plan, message_type: str) -> tuple[dict[str, str], dict]:
        rng, spec = self.rng, self.spec
        local = plan.send_at.astimezone(self.tz)
        if message_type == MessageType.THANK_YOU:  # after the visit, on a quarter hour
            visit = local - timedelta(minutes=rng.randrange(60, 240))
            appt = visit.replace(minute=visit.minute // 15 * 15, second=0, microsecond=0)
        else:
            if message_type in (MessageType.REMINDER, MessageType.WAITLIST):
                day = local.date() + timedelta(days=rng.choice((1, 1, 1, 2, 3)))
            else:
                day = local.date() + timedelta(days=rng.randrange(2, 22))
            slot = rng.randrange(8 * 4, 18 * 4)
            appt = datetime(
                day.year, day.month, day.day, slot // 4, 15 * (slot % 4), tzinfo=self.tz
            )
        code = f"{rng.getrandbits(40):010x}"
        price = rng.choice(spec.prices)
        self.invoice_no += 1
        context = {
            "first_name": plan.person.first or "there",
            "appointment_date": _day_label(appt.date()),
            "appointment_time": f"{appt:%I:%M %p}".lstrip("0"),
            "practitioner": rng.choice(spec.practitioners),
            "amount": f"${price:,.2f}",
            "invoice_number": f"INV-{self.invoice_no:05d}",
            "due_date": _day_label(local.date() + timedelta(days=14)),
            "link": f"https://{spec.site}/r/{code}",
            "unsubscribe_link": f"https://{spec.site}/u/{code}",
        }
        metadata: dict = {}
        if message_type in APPOINTMENT_TYPES:
            metadata["appointment"] = {
                "id": f"APT-{rng.randrange(10000, 99999)}",
                "starts_at": appt.isoformat(),
                "url": f"https://{spec.site}/appointments/{code}",
            }
        elif message_type in (MessageType.INVOICE, MessageType.PAYMENT_RECEIPT):
            metadata["invoice"] = {"number": context["invoice_number"], "amount": price}
        return context, metadata

    def _message(self, plan: _Plan) -> Message:
        """The message as it was created: content rendered, not yet sent."""
        sms = plan.channel == Channel.SMS
        address = plan.person.phone if sms else plan.person.email
        msg = Message(
            company=self.company,
            channel=plan.channel,
            to_address=address,
            to_name=plan.person.name,
            contact=plan.person.contact,
            created_at=plan.created_at,
            scheduled_for=plan.scheduled_for,
            created_by=plan.created_by,
        )
        if plan.template:
            versions = self.versions[plan.template]
            version = next(
                (v for v in reversed(versions) if v.created_at <= plan.created_at), versions[0]
            )
            template = self.templates[plan.template]
            context, metadata = self._context(plan, template.message_type)
            msg.template, msg.template_version = template, version
            msg.category, msg.message_type = template.category, template.message_type
            msg.subject = render(version.subject, context)
            msg.body_text = render(version.text, context)
            msg.body_html = render(version.html, context, escape=True)
            msg.metadata = metadata
        else:
            values = {
                "first": plan.person.first,
                "practitioner": self.rng.choice(self.spec.practitioners),
            }
            msg.category, msg.message_type = Category.SERVICE, MessageType.CUSTOM
            msg.subject = _fill_company(plan.custom[0], self.spec)
            msg.body_text = _fill_company(plan.custom[1].format(**values), self.spec)
        if sms:
            msg.segments, msg.encoding = count_segments(msg.body_text)
        return msg

    def _simulate(self, plan: _Plan) -> None:
        msg = self._message(plan)
        events: list[_Event] = []
        pmid = ""

        def ours(status: str, at: datetime, **kw) -> None:
            events.append(_Event(status=status, at=at, received=at, event=status, **kw))

        if plan.scheduled_for:
            due = plan.scheduled_for
            ours(Status.SCHEDULED, plan.created_at, reason=f"Due {due:%Y-%m-%d %H:%M} UTC")
            if due <= self.now:
                ours(Status.QUEUED, due)
        else:
            ours(Status.QUEUED, plan.created_at)
        at = plan.send_at
        if plan.outcome == "queued" or at > self.now:
            pass  # not picked up yet
        elif plan.cancel_at and at >= plan.cancel_at:
            ours(Status.CANCELED, plan.cancel_at + self._ms(200, 1500), reason=plan.cancel_reason)
        elif failed := self._never_sent(msg, at):
            status, reason, error = failed
            ours(status, at + self._ms(20, 300), reason=reason, error_message=error)
        else:
            outcome = plan.outcome or self._draw_outcome(plan, msg)
            pmid = self._provider_timeline(msg, events, outcome, at)
        self._settle(plan, msg, events, pmid)

    def _draw_outcome(self, plan: _Plan, msg: Message) -> str:
        if msg.channel == Channel.SMS:
            table = SMS_OUTCOMES
        elif msg.category == Category.MARKETING:
            table = MARKETING_EMAIL_OUTCOMES
        else:
            table = EMAIL_OUTCOMES
        names = [
            name
            for name in table
            if not (plan.person.contact and name in SUPPRESSING)
            # Nobody reports a delivery on an SMS this old any more; fresh ones may still.
            and not (name == "sent" and plan.send_at > self.now - timedelta(days=1))
        ]
        outcome = self.rng.choices(names, weights=[table[n] for n in names])[0]
        if outcome in TRACKED and not self.company.tracking_enabled:
            return "delivered"
        return outcome

    def _provider_timeline(
        self, msg: Message, events: list[_Event], outcome: str, at: datetime
    ) -> str:
        """What the worker and the (simulated) provider report for one send.

        Returns the provider's message id, which is the message's once accepted.
        """
        rng = self.rng
        sms = msg.channel == Channel.SMS
        kind, _, forced_code = outcome.partition(":")
        pmid = (
            f"SM{rng.getrandbits(128):032x}"
            if sms
            else f"{rng.getrandbits(128):032x}@simulator.msglog"
        )

        def ours(status: str, when: datetime, **kw) -> datetime:
            events.append(_Event(status=status, at=when, received=when, event=status, **kw))
            return when

        def provider(status: str, when: datetime, word: str, accepted: bool = True, **kw):
            extra = kw.pop("extra", {})
            payload = self._payload(msg, pmid if accepted else "", word, when, extra, **kw)
            received = when + self._ms(150, 6000)
            events.append(
                _Event(
                    status=status,
                    at=when,
                    received=received,
                    source=SIMULATOR,
                    event=word,
                    payload=payload,
                    accepted=accepted,
                    **kw,
                )
            )
            return when

        t = ours(Status.SENDING, at + self._ms(40, 1500), payload={"attempt": 1})
        if kind in ("failed_invalid_to", "failed_stop", "failed_region"):
            code = {"failed_invalid_to": "21211", "failed_stop": "21610"}.get(kind, "21408")
            provider(
                Status.FAILED,
                t + self._ms(150, 900),
                "failed",
                accepted=False,
                error_code=code,
                error_message=TWILIO_ERRORS[code],
                reason="Rejected by the provider",
            )
            return pmid
        if kind == "failed_retries":
            code, text = SOFT_BOUNCES[2]
            for attempt, wait in ((1, 0), (2, 60), (3, 300)):
                if attempt > 1:
                    t = ours(
                        Status.SENDING, t + timedelta(seconds=wait), payload={"attempt": attempt}
                    )
                provider(
                    "",
                    t + self._ms(200, 900),
                    "transient_error",
                    accepted=False,
                    error_code=code,
                    error_message=text,
                )
            ours(
                Status.FAILED,
                t + timedelta(seconds=2),
                error_code=code,
                error_message=f"{text} (gave up after 3 attempts)",
                reason="Retries exhausted",
            )
            return pmid
        if kind == "failed_timeout":
            ours(
                "",
                t + timedelta(seconds=30),
                error_code="timeout",
                error_message="No answer from the provider within 30 s; outcome unknown",
                reason="Maybe sent: asking the provider",
            )
            events[-1].event = "provider_timeout"
            provider(
                Status.FAILED,
                t + timedelta(minutes=10),
                "not_found",
                accepted=False,
                error_code="not_found",
                error_message="The provider has no record of this message; it was not sent",
                reason="Reconciled: not sent",
            )
            return pmid

        t = provider(Status.SENT, t + self._ms(200, 1200), "sent" if sms else "accepted")
        if kind in ("sent", "sending"):
            if kind == "sending":
                events.pop()  # the provider has not answered yet
            return pmid
        if sms:
            if kind == "delivered":
                delivered = provider(Status.DELIVERED, t + self._ms(2000, 25000), "delivered")
                if rng.random() < 0.05 and delivered < self.now - timedelta(hours=1):
                    # The "sent" callback arrived after "delivered": order changes nothing.
                    events[-2].received = events[-1].received + self._ms(2000, 40000)
            elif kind == "undelivered":
                code = forced_code or _weighted(rng, UNDELIVERED_CODES)
                provider(
                    Status.UNDELIVERED,
                    t + self._ms(3000, 90000),
                    "undelivered",
                    error_code=code,
                    error_message=TWILIO_ERRORS[code],
                )
            elif kind == "failed_callback":
                code = forced_code or rng.choice(("30008", "30001"))
                provider(
                    Status.FAILED,
                    t + self._ms(1000, 20000),
                    "failed",
                    error_code=code,
                    error_message=TWILIO_ERRORS[code],
                )
            elif kind == "multi_segment":
                for segment in range(1, msg.segments + 1):
                    when = t + timedelta(seconds=3 + 2.5 * segment)
                    if segment == 2:
                        provider(
                            Status.UNDELIVERED,
                            when,
                            "undelivered",
                            error_code="30003",
                            error_message=TWILIO_ERRORS["30003"],
                            provider_event_id=f"{pmid}/{segment}",
                            extra={"Segment": segment},
                        )
                    else:
                        provider(
                            Status.DELIVERED,
                            when,
                            "delivered",
                            provider_event_id=f"{pmid}/{segment}",
                            extra={"Segment": segment},
                        )
            return pmid

        if kind.startswith("deferred"):
            code, text = rng.choice(SOFT_BOUNCES[:2])
            t = provider(
                "", t + self._ms(1000, 5000), "deferred", error_code=code, error_message=text
            )
            if kind == "deferred_bounced":
                t = provider(
                    "", t + timedelta(hours=4), "deferred", error_code=code, error_message=text
                )
                provider(
                    Status.BOUNCED,
                    t + timedelta(hours=20),
                    "bounced",
                    error_code="550 5.4.7",
                    error_message="Delivery time expired after repeated temporary failures",
                    reason="Repeated soft bounces",
                )
                return pmid
            t += timedelta(minutes=rng.uniform(5, 90))
        if kind == "bounced":
            code, text = HARD_BOUNCES[0] if forced_code else rng.choice(HARD_BOUNCES)
            provider(
                Status.BOUNCED,
                t + self._ms(1000, 20000),
                "bounced",
                error_code=code,
                error_message=text,
                reason="Hard bounce",
            )
            return pmid
        delivered = provider(Status.DELIVERED, t + self._ms(800, 8000), "delivered")
        if kind == "delivered_bounced":
            code, text = rng.choice(HARD_BOUNCES[2:4])
            provider(
                Status.BOUNCED,
                delivered + timedelta(minutes=rng.uniform(2, 120)),
                "bounced",
                error_code=code,
                error_message=text,
                reason="Hard bounce after delivery",
            )
        elif kind in ("opened", "clicked", "complained"):
            opened = delivered + timedelta(minutes=min(rng.expovariate(1 / 180), 4000))
            if kind != "complained" or self.company.tracking_enabled:
                provider(
                    Status.OPENED,
                    opened,
                    "opened",
                    extra={
                        "user_agent": rng.choice(OPEN_AGENTS),
                        "ip": f"203.0.113.{rng.randrange(1, 255)}",
                    },
                )
            if kind == "clicked":
                provider(
                    Status.CLICKED,
                    opened + self._ms(4000, 600000),
                    "clicked",
                    extra={
                        "url": msg.metadata.get("appointment", {}).get("url")
                        or f"https://{self.spec.site}/book"
                    },
                )
            elif kind == "complained":
                provider(
                    Status.COMPLAINED,
                    opened + timedelta(minutes=rng.uniform(1, 600)),
                    "spamreport",
                    reason="The recipient marked it as spam",
                )
        return pmid

    def _payload(
        self, msg: Message, pmid: str, word: str, when: datetime, extra: dict, **kw
    ) -> dict:
        """A provider report in the shape its webhooks (or, unaccepted, its API) use."""
        if not pmid:
            code = kw.get("error_code", "")
            payload = {"code": code, "message": kw.get("error_message", ""), "status": 400}
            if msg.channel == Channel.SMS and code.isdigit():
                payload.update(
                    code=int(code), more_info=f"https://www.twilio.com/docs/errors/{code}"
                )
            elif msg.channel == Channel.EMAIL:
                payload = {
                    "event": word,
                    "recipient": msg.to_address,
                    "smtp_response": f"{code} {kw.get('error_message', '')}".strip(),
                }
        elif msg.channel == Channel.SMS:
            payload = {
                "MessageSid": pmid,
                "MessageStatus": word,
                "To": msg.to_address,
                "From": self.spec.sms_sender,
                "NumSegments": str(msg.segments),
                "ApiVersion": "2010-04-01",
            }
            if kw.get("error_code"):
                payload["ErrorCode"] = kw["error_code"]
                payload["ErrorMessage"] = kw.get("error_message", "")
        else:
            payload = {
                "event": word,
                "message_id": pmid,
                "recipient": msg.to_address,
                "timestamp": int(when.timestamp()),
            }
            if kw.get("error_code"):
                payload["smtp_response"] = f"{kw['error_code']} {kw.get('error_message', '')}"
            elif word == "delivered":
                payload["smtp_response"] = "250 2.0.0 OK"
        payload.update(extra)
        return payload

    def _settle(self, plan: _Plan, msg: Message, events: list[_Event], pmid: str) -> None:
        """Keep what has happened by now, derive the status, apply the side effects."""
        events = [e for e in events if e.received <= self.now]
        if any(e.accepted for e in events):
            msg.provider_message_id = pmid
        facts, keys = [], set()
        for e in events:
            ident = msg.provider_message_id if e.accepted else msg.public_id
            key = dedupe_key(ident, e.status, e.event, e.at.isoformat(), e.provider_event_id)
            if key in keys:
                continue
            keys.add(key)
            facts.append(EventFact(key, e.status, e.at, e.error_code, e.error_message, e.reason))
            self.events.append((msg, e, key))
        for name, value in derive(facts).as_fields().items():
            setattr(msg, name, value)
        sending = [e for e in events if e.status == Status.SENDING]
        msg.attempts = len(sending)
        msg.updated_at = max(e.received for e in events)
        if sending:
            msg.provider = PROVIDER
            if msg.channel == Channel.SMS:
                # Credits are taken when the message is handed to a worker.
                msg.credits = msg.segments
                self.balance -= msg.credits
                self.charges.append((sending[0].at, msg))
        self._note_suppression(msg, events)
        self.messages.append(msg)
        ours = [e.at for e in events if e.source == SYSTEM]
        self.handoff[id(msg)] = max(ours)
        if plan.batch:
            self.batch_of[id(msg)] = plan.batch

    def _note_suppression(self, msg: Message, events: list[_Event]) -> None:
        for e in events:
            if e.status == Status.BOUNCED:
                reason = (
                    Suppression.Reason.REPEATED_SOFT_BOUNCE
                    if e.reason == "Repeated soft bounces"
                    else Suppression.Reason.HARD_BOUNCE
                )
            elif e.status == Status.COMPLAINED:
                reason = Suppression.Reason.COMPLAINT
            elif e.status == Status.FAILED and e.error_code == "21610":
                reason = Suppression.Reason.SMS_STOP
            else:
                continue
            key = (msg.channel, msg.to_address.lower())
            if key not in self.suppressed:
                note = f"{e.error_code} {e.error_message}".strip() or e.reason
                self.suppressed[key] = (e.at, reason, msg, note)

    # ---- writing ----------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        """Simulate and write the company's log; returns the counts written."""
        self._plan_one_offs()
        self._plan_showcases()
        self._plan_batches()
        for plan in sorted(self.plans, key=lambda p: (p.send_at, p.seq)):
            self._simulate(plan)

        batches = self._write_batches()
        insert_objects(Message, self.messages)
        company_id = self.company.pk
        insert_rows(
            StatusEvent,
            EVENT_COLUMNS,
            (
                (company_id, msg.pk, e.status, e.event, e.at, e.received, e.source, e.error_code,
                 e.error_message, e.reason, e.provider_event_id, key, e.payload)
                for msg, e, key in self.events
            ),
        )  # fmt: skip
        ledger = self._write_ledger()
        suppressions = self._write_suppressions()
        return {
            "messages": len(self.messages),
            "events": len(self.events),
            "batches": len(batches),
            "ledger entries": ledger,
            "suppressions": suppressions,
        }

    def _write_batches(self) -> list[Batch]:
        by_key: dict[str, list[Message]] = defaultdict(list)
        for msg in self.messages:
            if key := self.batch_of.get(id(msg)):
                by_key[key].append(msg)
        written: dict[str, Batch] = {}
        for spec in self.batch_specs.values():  # in order: a restart after its original
            messages = by_key[spec.key]
            times = self.batch_times[spec.key]
            counts = Counter(m.status for m in messages)
            batch = Batch(
                company=self.company,
                name=spec.name,
                channel=TEMPLATE_BY_NAME[spec.template].channel,
                template=self.templates[spec.template],
                template_version=messages[0].template_version,
                state=spec.state,
                created_by=self.admin,
                restarted_from=written.get(spec.restart_of),
                created_at=times["created"],
                scheduled_for=times["scheduled"],
                started_at=times["started"],
                stopped_at=times["stopped"],
                stopped_by=self.admin if times["stopped"] else None,
                **batch_counters(counts),
            )
            if spec.state == Batch.State.FINISHED:
                batch.finished_at = max(self.handoff[id(m)] for m in messages) + timedelta(
                    seconds=1
                )
            batch.save()
            written[spec.key] = batch
            for msg in messages:
                msg.batch = batch
        return list(written.values())

    def _write_ledger(self) -> int:
        """Top-ups and one charge per charged SMS, in time order, with running balances."""
        admin_id = self.admin.pk
        entries = [
            (at, CreditLedgerEntry.Kind.TOP_UP, credits, None, admin_id,
             f"Top-up: {credits:,} SMS credits (card ending 4242)")
            for at, credits in self.top_ups
        ] + [
            (at, CreditLedgerEntry.Kind.CHARGE, -msg.credits, msg.pk, None,
             f"SMS to {msg.to_address}, {msg.segments} segment{'s' if msg.segments > 1 else ''}")
            for at, msg in self.charges
        ]  # fmt: skip
        entries.sort(key=lambda entry: entry[0])
        ledger = CreditLedgerEntry.objects.filter(company=self.company)
        balance = ledger.aggregate(total=Sum("amount"))["total"] or 0
        rows = []
        for at, kind, amount, message_id, user_id, note in entries:
            balance += amount
            rows.append((self.company.pk, kind, amount, balance, message_id, user_id, note, at))
        # Written directly: created_at is auto_now_add, which bulk_create would set to "now".
        insert_rows(CreditLedgerEntry, LEDGER_COLUMNS, rows)
        self.company.sms_credit_balance = balance
        self.company.save(update_fields=["sms_credit_balance"])
        return len(rows)

    def _write_suppressions(self) -> int:
        rows = [
            Suppression(
                company=self.company,
                channel=channel,
                address=address,
                reason=reason,
                message=msg,
                note=note,
                created_at=at,
            )
            for (channel, address), (at, reason, msg, note) in self.suppressed.items()
        ]
        Suppression.objects.bulk_create(rows, ignore_conflicts=True)
        # The contacts' red flags say the same as the suppression list.
        flags: dict[str, set[str]] = defaultdict(set)
        for (channel, address), (_at, reason, _msg, _note) in self.suppressed.items():
            if channel == Channel.SMS:
                flags["sms_opted_out"].add(address)
            elif reason == Suppression.Reason.COMPLAINT:
                flags["marketing_opt_out"].add(address)
            else:
                flags["email_bounced"].add(address)
        contacts = Contact.objects.filter(company=self.company)
        if flags["sms_opted_out"]:
            contacts.filter(phone__in=flags["sms_opted_out"]).update(sms_opted_out=True)
        if flags["email_bounced"]:
            contacts.filter(email__in=flags["email_bounced"]).update(email_bounced=True)
        if flags["marketing_opt_out"]:
            contacts.filter(email__in=flags["marketing_opt_out"]).update(marketing_opt_out=True)
        return len(rows)


EVENT_COLUMNS = (
    "company_id", "message_id", "status", "event", "occurred_at", "received_at", "source",
    "error_code", "error_message", "reason", "provider_event_id", "dedupe_key", "raw_payload",
)  # fmt: skip
LEDGER_COLUMNS = (
    "company_id", "kind", "amount", "balance_after", "message_id", "created_by_id", "note",
    "created_at",
)  # fmt: skip


def insert_rows(model: type[models.Model], columns: tuple[str, ...], rows: Iterable[tuple]) -> int:
    """INSERT plain rows in bulk (COPY on PostgreSQL, executemany elsewhere); returns how many.

    bulk_create spends most of its time per value in generic machinery; for tens of
    thousands of rows of two simple tables this takes a fraction of that. Values are
    adapted as their fields would adapt them, so every backend gets what it expects.
    """
    fields = [model._meta.get_field(name) for name in columns]  # names or attnames
    ops = connection.ops

    def prep(f: models.Field):
        """How a value of `f` is adapted for the database (None: as it is)."""
        if isinstance(f, models.JSONField):
            return lambda value: ops.adapt_json_value(value, f.encoder)
        if isinstance(f, models.DateTimeField):
            return ops.adapt_datetimefield_value
        if isinstance(f, models.CharField | models.TextField | models.IntegerField):
            return None
        if f.is_relation:  # given as the key's value
            return None
        return lambda value: f.get_db_prep_save(value, connection)

    preps = [prep(f) for f in fields]
    quote = ops.quote_name
    table = quote(model._meta.db_table)
    column_list = ", ".join(quote(f.column) for f in fields)
    count = 0
    rows = iter(rows)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Only the model's own table and column names are interpolated.
            with cursor.cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(
                        [v if p is None else p(v) for p, v in zip(preps, row, strict=True)]
                    )
                    count += 1
            return count
        placeholders = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})"  # noqa: S608
        while chunk := list(itertools.islice(rows, CHUNK)):
            params = [
                [v if p is None else p(v) for p, v in zip(preps, row, strict=True)] for row in chunk
            ]
            cursor.executemany(sql, params)
            count += len(chunk)
    return count


def insert_objects(model: type[models.Model], objects: list[models.Model]) -> None:
    """bulk_create, but with ids reserved first and rows written by :func:`insert_rows`.

    On PostgreSQL bulk_create binds every value client-side: thousands of messages took
    seconds. Ids come from the table's sequence there; on SQLite from above the highest
    ever used, which is safe because this transaction already holds SQLite's single
    write lock (it has written before), so no other writer can take the same ids.
    """
    table, pk = model._meta.db_table, model._meta.pk.column
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ids = reserve_ids(model, len(objects))
        elif connection.vendor == "sqlite" and connection.in_atomic_block:
            cursor.execute(f"SELECT MAX({quote(pk)}) FROM {quote(table)}")  # noqa: S608
            highest = cursor.fetchone()[0] or 0
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            first = max(highest, row[0] if row else 0) + 1
            ids = list(range(first, first + len(objects)))
        else:
            model.objects.bulk_create(objects, batch_size=CHUNK)
            return
    for obj, pk_value in zip(objects, ids, strict=True):
        obj.pk = pk_value
        obj._state.adding = False
    for obj in objects:  # foreign keys given as objects saved since
        obj._prepare_related_fields_for_save(operation_name="insert_objects")
    columns = tuple(f.attname for f in model._meta.concrete_fields)
    insert_rows(model, columns, ([getattr(obj, c) for c in columns] for obj in objects))


def batch_counters(counts: Counter) -> dict[str, int]:
    """A batch's counters from the statuses of its messages (the rule is in batches.py)."""
    counters = counters_for(counts)
    return {**counters, "planned_count": counters["total_count"]}


def _cumulative(weights: Iterable[float]) -> Iterable[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


# --------------------------------------------------------------------------------------
# Live traffic for the embedded demo
# --------------------------------------------------------------------------------------

# Addresses the simulator answers in telling ways (see msglog/providers/simulator/client.py).
TELLING_ADDRESSES = {
    Channel.SMS: ["+61491570000", "+61491570001", "+61491570004", "+61491570003"],
    Channel.EMAIL: [
        "sam@bounce.example.com",
        "lee@defer.example.com",
        "kim@click.example.com",
        "ana@open.example.com",
        "max@spam.example.com",
    ],
}


def send_demo_traffic(rng: random.Random | None = None) -> int:
    """Send a few messages from a demo company, as its booking system would.

    Runs every few seconds in embedded mode (DEMO_TRAFFIC), so the Logs page shows
    messages move from queued to sending, sent and delivered or failed.
    """
    rng = rng or random.Random()
    sent = 0
    with scopes_disabled():
        companies = list(Company.objects.filter(slug__in=[s.slug for s in COMPANIES]))
        for _ in range(rng.randint(1, 3)):
            if not companies:
                break
            company = rng.choice(companies)
            version = (
                MessageTemplateVersion.objects.filter(company=company)
                .select_related("template")
                .order_by("?")
                .first()
            )
            if version is None:
                continue
            template = version.template
            contact = Contact.objects.filter(company=company).order_by("?").first()
            if rng.random() < 0.25 or contact is None:
                recipient = Recipient(
                    address=rng.choice(TELLING_ADDRESSES[template.channel]), name="Demo Recipient"
                )
            else:
                recipient = Recipient(contact=contact, name=contact.name)
            send(
                company,
                channel=template.channel,
                recipient=recipient,
                category=template.category,
                message_type=template.message_type,
                template_version=version,
                metadata={"demo": True},
            )
            sent += 1
    return sent
