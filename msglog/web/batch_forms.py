"""The New batch form: a template, recipients from a CSV or the contacts, now or later.

Every choice is limited to the current company in ``__init__``.
"""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone

from companies.models import Company, Contact
from msglog.web.forms import company_timezone
from templates_app.models import MessageTemplate

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class TemplateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: MessageTemplate) -> str:
        return f"{obj.name} ({obj.get_channel_display()})"


class BatchForm(forms.Form):
    name = forms.CharField(max_length=200, label="Batch name")
    template = TemplateChoiceField(queryset=MessageTemplate.objects.none())
    source = forms.ChoiceField(
        choices=[("csv", "A CSV file of recipients"), ("contacts", "Our contacts")],
        initial="csv",
        widget=forms.RadioSelect,
        label="Send to",
    )
    csv_file = forms.FileField(
        required=False,
        label="CSV file",
        help_text="First line names the columns: phone or email, name, and any placeholder "
        "of the template (e.g. appointment_date).",
    )
    contact_search = forms.CharField(
        required=False,
        max_length=200,
        label="Contacts matching",
        help_text="Leave empty for all contacts; or a name, email or phone to narrow down.",
    )
    scheduled_for = forms.DateTimeField(
        required=False,
        label="Send at",
        help_text="Leave empty to send now.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )

    def __init__(self, data=None, files=None, *, company: Company, **kwargs):
        super().__init__(data, files, **kwargs)
        self.company = company
        self.tz = company_timezone(company)
        templates = self.fields["template"]
        assert isinstance(templates, forms.ModelChoiceField)  # the field declared above
        templates.queryset = MessageTemplate.objects.filter(company=company).order_by("name")
        self.fields["scheduled_for"].help_text = f"Leave empty to send now ({self.tz.key})."

    def clean_scheduled_for(self) -> datetime | None:
        when = self.cleaned_data.get("scheduled_for")
        if when is None:
            return None
        when = when.replace(tzinfo=self.tz) if timezone.is_naive(when) else when
        if when <= timezone.now():
            raise forms.ValidationError("Pick a time in the future, or leave it empty.")
        return when

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data  # what Form.clean returns
        if data.get("source") == "csv":
            upload = data.get("csv_file")
            if upload is None:
                self.add_error("csv_file", "Choose the CSV file of recipients.")
            elif upload.size > MAX_UPLOAD_BYTES:
                self.add_error("csv_file", "The file is over 50 MB: split it in two batches.")
        return data

    def contacts(self) -> QuerySet:
        """The contacts chosen as recipients (source "contacts")."""
        contacts = Contact.objects.filter(company=self.company)
        term = (self.cleaned_data.get("contact_search") or "").strip()
        if term:
            contacts = contacts.filter(
                Q(name__icontains=term) | Q(email__icontains=term) | Q(phone__icontains=term)
            )
        return contacts
