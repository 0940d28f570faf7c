"""Company settings an admin may change, with their rules.

A change is validated whole and saved in one transaction with its audit entry: an
invalid value changes nothing.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from zoneinfo import available_timezones

import phonenumbers
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, validate_email
from django.db import transaction

from companies import audit
from companies.models import Company
from msglog.rules.addresses import normalize_phone

RETENTION_LIMIT = 30  # days a company without a contract may keep its log
CONTRACTED_RETENTION_LIMIT = 365
# An alphanumeric sender ID: 1-11 letters, digits or spaces, at least one letter.
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")

SETTINGS_FIELDS = [
    "sms_enabled",
    "email_enabled",
    "sms_sender",
    "email_sender",
    "default_region",
    "tracking_enabled",
    "retention_days",
    "timezone",
]


def retention_limit(company: Company) -> int:
    return CONTRACTED_RETENTION_LIMIT if company.contracted else RETENTION_LIMIT


def region_choices() -> list[tuple[str, str]]:
    return sorted((region, region) for region in phonenumbers.SUPPORTED_REGIONS if region != "001")


class CompanySettingsForm(forms.ModelForm):
    timezone = forms.ChoiceField(label="Time zone")
    default_region = forms.ChoiceField(
        label="Default phone region",
        help_text="Country for phone numbers written without +country code.",
    )

    class Meta:
        model = Company
        fields = SETTINGS_FIELDS
        labels = {
            "sms_enabled": "Send SMS",
            "email_enabled": "Send email",
            "sms_sender": "SMS sender",
            "email_sender": "Email sender",
            "tracking_enabled": "Track email opens and clicks",
            "retention_days": "Keep messages for (days)",
        }
        help_texts = {
            "sms_enabled": "When off, new SMS end as “SMS disabled for company”, unsent.",
            "email_enabled": "When off, new emails end as “Email disabled for company”, unsent.",
            "sms_sender": "A phone number in +E.164 form, or a sender ID of up to 11 "
            "letters and digits. Empty: the provider's default.",
            "email_sender": "An address, optionally with a name: Acme Clinics "
            "<hello@acme.example>. Empty: the platform's default.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        zones, regions = self.fields["timezone"], self.fields["default_region"]
        assert isinstance(zones, forms.ChoiceField)  # both declared above
        assert isinstance(regions, forms.ChoiceField)
        zones.choices = [(z, z) for z in sorted(available_timezones())]
        regions.choices = region_choices()
        limit = retention_limit(self.instance)
        field = self.fields["retention_days"]
        # The model's 0-or-more validator would speak first, in less helpful words.
        field.validators = [v for v in field.validators if not isinstance(v, MinValueValidator)]
        field.widget.attrs.update(min=1, max=limit)
        field.help_text = (
            f"Older messages, their events and exports are deleted every night. "
            f"Between 1 and {limit} days"
            + ("." if self.instance.contracted else " (365 with a contract).")
        )

    def clean_retention_days(self) -> int:
        days = self.cleaned_data["retention_days"]
        limit = retention_limit(self.instance)
        if days < 1:
            raise ValidationError("Keep messages for at least 1 day.")
        if days > limit:
            raise ValidationError(
                f"Messages can be kept for at most {limit} days"
                + ("." if self.instance.contracted else " without a contract (365 with one).")
            )
        return days

    def clean_sms_sender(self) -> str:
        sender = self.cleaned_data["sms_sender"].strip()
        if not sender:
            return ""
        if sender.startswith("+"):
            number = normalize_phone(sender, "")
            if number is None:
                raise ValidationError("This phone number is not valid; write it as +14155550123.")
            return number
        if not ALPHANUMERIC_SENDER.match(sender):
            raise ValidationError(
                "A sender ID is 1 to 11 letters, digits or spaces, with at least one letter; "
                "or give a phone number starting with +."
            )
        return sender

    def clean_email_sender(self) -> str:
        sender = self.cleaned_data["email_sender"].strip()
        if not sender:
            return ""
        _name, address = parseaddr(sender)
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(
                "Enter an email address, optionally with a name: Acme <hello@acme.example>."
            ) from None
        if "\n" in sender or "\r" in sender:
            raise ValidationError("The sender must be on one line.")
        return sender


def changes(form: CompanySettingsForm) -> dict[str, list]:
    """{field: [before, after]} for every field the form changes."""
    return {
        name: [form.initial.get(name), form.cleaned_data[name]]
        for name in form.changed_data
        if form.initial.get(name) != form.cleaned_data[name]
    }


def save_settings(form: CompanySettingsForm, *, request=None) -> dict[str, list]:
    """Save a valid form and audit what changed, together or not at all."""
    changed = changes(form)
    if not changed:
        return {}
    company = form.instance
    with transaction.atomic():
        # Only the settings' columns: a concurrent top-up's balance is never overwritten.
        Company.objects.filter(pk=company.pk).update(
            **{name: form.cleaned_data[name] for name in changed}
        )
        audit.record(
            audit.Action.SETTINGS_CHANGED,
            "Changed " + ", ".join(str(form.fields[name].label).lower() for name in changed),
            request=request,
            company=company,
            details={"changes": changed},
        )
    return changed
