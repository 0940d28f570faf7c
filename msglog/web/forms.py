"""The Compose form: one message from a template, to a contact or to a typed address.

Every choice is limited to the current company in ``__init__``: another company's
template or contact id is simply not among the choices (a form error, nothing sent).
The preview renders with the very functions the send uses (:func:`sending.rendered`,
:func:`sending.check`, :func:`count_segments`), so what it shows is what will be sent.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString

from companies.models import Company, Contact
from msglog.queries import suppressions
from msglog.rules import addresses
from msglog.rules.content import html_document
from msglog.rules.kinds import Channel
from msglog.rules.segments import count_segments, length_in_units
from msglog.rules.statuses import Status
from msglog.services import sending
from templates_app.models import MessageTemplate, MessageTemplateVersion
from templates_app.rendering import placeholders

# The contact select lists at most this many matches; the search narrows it down, so
# the page stays light for a company with thousands of contacts.
CONTACT_CHOICES = 50
KEY_PREFIX = "compose-"
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}[0-9a-f]{{32}}$")
# Filled from the recipient's name by the send service unless the person types a value.
FROM_NAME = {"name", "first_name"}


def new_idempotency_key() -> str:
    """A fresh key for one rendering of the form: submitting it twice sends once."""
    return f"{KEY_PREFIX}{uuid.uuid4().hex}"


def company_timezone(company: Company) -> ZoneInfo:
    try:
        return ZoneInfo(company.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def message_context(name: str, values: dict[str, str]) -> dict[str, str]:
    """The placeholder values a send fills in, as `sending.send_many` builds them."""
    return {"name": name, "first_name": name.split(" ")[0], **values}


def what_address(channel: str) -> str:
    return "phone number" if channel == Channel.SMS else "email address"


class TemplateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: MessageTemplate) -> str:
        return f"{obj.name} ({obj.get_channel_display()})"


class ContactChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Contact) -> str:
        reach = " · ".join(a for a in (obj.phone, obj.email) if a) or "no phone or email"
        return f"{obj.name} — {reach}"


@dataclass(frozen=True)
class ComposePreview:
    """What the message would be, and what the send would record, before it is sent."""

    template: MessageTemplate
    version_number: int | None  # None: the send publishes the template as version 1
    channel: str
    to_name: str
    to_address: str  # normalized when valid, as typed otherwise; "" without a recipient
    subject: str
    text: str
    document: SafeString | str  # sanitized HTML as a whole page; "" without HTML
    segments: int = 0
    encoding: str = ""
    length: int = 0
    balance: int = 0
    # The never-sent status the send would record, and why; "" when it would be queued.
    blocked_status: str = ""
    blocked_label: str = ""
    blocked_reason: str = ""
    missing: list[str] = field(default_factory=list)  # placeholders that will be empty

    @property
    def credits(self) -> int:
        """One credit per SMS segment."""
        return self.segments

    @property
    def balance_short(self) -> bool:
        return self.channel == Channel.SMS and self.segments > self.balance


class ComposeForm(forms.Form):
    template = TemplateChoiceField(
        queryset=MessageTemplate.objects.none(),
        label="Template",
        empty_label="— Choose a template —",
        error_messages={"invalid_choice": "That template is not one of this company's."},
    )
    contact_q = forms.CharField(
        required=False,
        label="Find a contact",
        max_length=100,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name, email or phone", "autocomplete": "off"}
        ),
    )
    contact = ContactChoiceField(
        queryset=Contact.objects.none(),
        required=False,
        label="Contact",
        empty_label="— No contact: type an address instead —",
        error_messages={"invalid_choice": "That contact is not one of this company's."},
    )
    address = forms.CharField(required=False, max_length=254, label="Or an address")
    scheduled_for = forms.DateTimeField(
        required=False,
        label="Send later (optional)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, data=None, *, company: Company, initial: dict | None = None, **kwargs):
        initial = {"idempotency_key": new_idempotency_key(), **(initial or {})}
        super().__init__(data, initial=initial, **kwargs)
        self.company = company
        self.tz = company_timezone(company)
        templates = MessageTemplate.objects.filter(company=company).order_by("name", "pk")
        contacts = Contact.objects.filter(company=company).order_by("name", "pk")
        template_field, contact_field = self.fields["template"], self.fields["contact"]
        assert isinstance(template_field, TemplateChoiceField)  # both declared above
        assert isinstance(contact_field, ContactChoiceField)
        template_field.queryset = templates
        contact_field.queryset = contacts
        when = self.fields["scheduled_for"]
        when.help_text = f"In {self.tz.key}. Leave empty to send now; it must be in the future."

        self.chosen_template: MessageTemplate | None = self._chosen(templates, "template")
        self.version: MessageTemplateVersion | None = (
            self.chosen_template.current_version if self.chosen_template else None
        )
        self.placeholder_names: list[str] = []
        if self.chosen_template:
            source = self.version or self.chosen_template
            self.placeholder_names = placeholders(f"{source.subject}\n{source.text}\n{source.html}")
            address = self.fields["address"]
            address.help_text = f"A {what_address(self.channel)}, if not sent to a contact."
            address.widget.attrs["placeholder"] = (
                "+1 415 555 0100" if self.channel == Channel.SMS else "name@example.org"
            )
        for name in self.placeholder_names:
            self.fields[f"value_{name}"] = forms.CharField(
                required=False,
                max_length=500,
                label=name,
                help_text="From the recipient's name unless you type a value."
                if name in FROM_NAME
                else "",
            )
        self._limit_contact_choices(contacts)

    # --- what was chosen, before (or without) validation -----------------------------------

    @property
    def channel(self) -> str:
        return self.chosen_template.channel if self.chosen_template else ""

    def _raw(self, name: str) -> str:
        source = self.data if self.is_bound else self.initial
        value = source.get(name, "")
        if isinstance(value, Contact | MessageTemplate):
            return str(value.pk)
        return str(value or "").strip()

    def _chosen(self, queryset: QuerySet, name: str):
        """The object picked in field `name`, looked up in this company's choices only."""
        raw = self._raw(name)
        if not (raw.isascii() and raw.isdigit() and len(raw) < 19):  # a bigint, or nothing
            return None
        return queryset.filter(pk=int(raw)).first()

    def _limit_contact_choices(self, contacts: QuerySet) -> None:
        """List the contacts matching the search (at most CONTACT_CHOICES), plus the chosen
        one. Validation still accepts any of the company's contacts."""
        q = self._raw("contact_q")
        matching = contacts
        if q:
            matching = contacts.filter(
                Q(name__icontains=q) | Q(email__icontains=q) | Q(phone__icontains=q)
            )
        shown = list(matching[:CONTACT_CHOICES])
        self.contact_shown = len(shown)
        self.contact_total = (
            matching.count() if len(shown) == CONTACT_CHOICES else self.contact_shown
        )
        self.contact_query = q
        chosen = self._chosen(contacts, "contact")
        if chosen is not None and chosen not in shown:
            shown.insert(0, chosen)
        field_ = self.fields["contact"]
        assert isinstance(field_, ContactChoiceField)  # the field declared above
        field_.widget.choices = [("", field_.empty_label)] + [
            (c.pk, field_.label_from_instance(c)) for c in shown
        ]

    # --- validation ------------------------------------------------------------------------

    def full_clean(self) -> None:
        # A datetime-local value has no zone: it is read in the company's time zone.
        with timezone.override(self.tz):
            super().full_clean()

    def clean_idempotency_key(self) -> str:
        key = self.cleaned_data["idempotency_key"]
        if not KEY_PATTERN.match(key):
            raise forms.ValidationError("The form is out of date: reload the page.")
        return key

    def clean_scheduled_for(self) -> datetime | None:
        when = self.cleaned_data.get("scheduled_for")
        if when is not None and when <= timezone.now():
            raise forms.ValidationError(
                f"Pick a time in the future (times are in {self.tz.key}), "
                "or leave it empty to send now."
            )
        return when

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data  # what Form.clean returns
        template: MessageTemplate | None = data.get("template")
        contact: Contact | None = data.get("contact")
        address = data.get("address", "")
        if contact and address:
            self.add_error("address", "Choose a contact or type an address, not both.")
        elif not contact and not address and "contact" not in self.errors:
            self.add_error(None, "Choose a contact or type an address.")
        if template is None:
            return data
        what = what_address(template.channel)
        if address and not contact:
            # The same normalization the send applies: a typo is caught here, before any
            # message is recorded (a send would record it as invalid_recipient).
            normalized = addresses.normalize_address(
                template.channel, address, self.company.default_region
            )
            if normalized is None:
                self.add_error("address", f"“{address}” is not a valid {what}.")
            else:
                data["address"] = normalized
        if (
            contact
            and not address
            and not sending.Recipient(contact=contact).address_for(template.channel)
        ):
            self.add_error(
                "contact",
                f"{contact.name} has no {what} on file: type one under “Or an address”.",
            )
        return data

    # --- for the send and the preview -------------------------------------------------------

    @property
    def placeholder_fields(self) -> list[forms.BoundField]:
        return [self[f"value_{name}"] for name in self.placeholder_names]

    def problems(self) -> list[str]:
        """What stops this form from being sent, in words (for the live preview)."""
        found = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            found += [f"{label}: {error}" if label else str(error) for error in errors]
        return found

    def values(self) -> dict[str, str]:
        """The placeholder values typed in; empty ones are left to the defaults."""
        typed = {name: self._raw(f"value_{name}") for name in self.placeholder_names}
        return {name: value for name, value in typed.items() if value}

    def recipient(self) -> sending.Recipient:
        """The recipient of a valid form, as `sending.send` takes it."""
        contact = self.cleaned_data.get("contact")
        return sending.Recipient(
            address=self.cleaned_data.get("address", ""),
            name=contact.name if contact else "",
            contact=contact,
            context=self.values(),
        )

    def preview(self) -> ComposePreview | None:
        """The message as it would be sent now, even from a form that is not valid yet."""
        template = self.chosen_template
        if template is None:
            return None
        company, channel = self.company, template.channel
        contacts = self.fields["contact"]
        assert isinstance(contacts, ContactChoiceField)  # the field declared above
        assert contacts.queryset is not None  # the company's contacts, set in __init__
        contact = self._chosen(contacts.queryset, "contact")
        typed = self._raw("address")
        recipient = sending.Recipient(
            address=typed, name=contact.name if contact else "", contact=contact
        )
        values = self.values()
        context = message_context(recipient.name, values)
        body = sending.rendered(
            self.version,
            sending.Content(subject=template.subject, text=template.text, html=template.html),
            context,
        )
        segments, encoding, length = 0, "", 0
        if channel == Channel.SMS:
            segments, encoding = count_segments(body.text)
            length = length_in_units(body.text)

        raw = recipient.address_for(channel) or ""
        if contact or typed:
            address = addresses.normalize_address(channel, raw, company.default_region)
            suppressed = suppressions.suppressions_for(
                company, channel, [address] if address else []
            )
        else:
            # No recipient yet: an empty (not None) address skips the address checks, so
            # only the channel is checked.
            address, suppressed = "", {}
        verdict = sending.check(
            company, channel, address, raw, template.category, contact, suppressed
        )
        balance = company.sms_credit_balance
        if verdict.status is None and channel == Channel.SMS and segments > balance:
            verdict = sending.Verdict(
                Status.INSUFFICIENT_CREDITS,
                f"Needs {segments} credit{'s' if segments != 1 else ''}; the balance is {balance}.",
            )
        return ComposePreview(
            template=template,
            version_number=self.version.number if self.version else None,
            channel=channel,
            to_name=recipient.name,
            to_address=address or raw,
            subject=body.subject,
            text=body.text,
            document=html_document(body.html) if body.html.strip() else "",
            segments=segments,
            encoding=encoding,
            length=length,
            balance=balance,
            blocked_status=verdict.status or "",
            blocked_label=Status(verdict.status).label if verdict.status else "",
            blocked_reason=verdict.reason,
            missing=[name for name in self.placeholder_names if not context.get(name)],
        )
