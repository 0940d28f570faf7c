"""Erasure pages (admins): one recipient address, or one contact from the contact page.

Two steps: the first POST shows what would be deleted, the second (confirm) erases.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from companies.models import Contact
from companies.tenancy import CompanyRequest, for_company
from companies.views.settings import CurrentCompanyMixin
from msglog.services import erasure


class ErasureForm(forms.Form):
    address = forms.CharField(label="Email address or phone number", max_length=254, strip=True)
    keep_suppression = forms.BooleanField(
        required=False,
        label="Keep the address on the do-not-send list",
        help_text="Recommended when the person unsubscribed or replied STOP: "
        "the address stays, so nothing is sent to it again.",
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class ErasureView(CurrentCompanyMixin, View):
    request: CompanyRequest
    template_name = "msglog/erasure.html"

    def get(self, request: CompanyRequest) -> HttpResponse:
        return render(request, self.template_name, {"form": ErasureForm()})

    def post(self, request: CompanyRequest) -> HttpResponse:
        assert request.company is not None  # CurrentCompanyMixin refuses the page without one
        form = ErasureForm(request.POST)
        target = None
        if form.is_valid():
            try:
                target = erasure.target_for_address(request.company, form.cleaned_data["address"])
            except erasure.ErasureError as error:
                form.add_error("address", str(error))
        if target is None:
            return render(request, self.template_name, {"form": form}, status=400)
        if not form.cleaned_data["confirm"]:
            return render(
                request,
                self.template_name,
                {"form": form, "preview": erasure.preview(target), "confirming": True},
            )
        counts = erasure.erase(
            target, keep_suppression=form.cleaned_data["keep_suppression"], request=request
        )
        messages.success(request, done_message(counts))
        return redirect("settings-erasure")


class ContactErasureView(CurrentCompanyMixin, View):
    """Erase one contact and everything logged for it (its messages and its addresses)."""

    request: CompanyRequest
    template_name = "msglog/erasure.html"

    def contact(self, request: CompanyRequest, contact_id: int) -> Contact:
        return get_object_or_404(for_company(Contact.objects.all(), request), pk=contact_id)

    def get(self, request: CompanyRequest, contact_id: int) -> HttpResponse:
        contact = self.contact(request, contact_id)
        target = erasure.target_for_contact(contact)
        return render(
            request,
            self.template_name,
            {"contact": contact, "preview": erasure.preview(target), "confirming": True},
        )

    def post(self, request: CompanyRequest, contact_id: int) -> HttpResponse:
        contact = self.contact(request, contact_id)
        counts = erasure.erase(
            erasure.target_for_contact(contact),
            keep_suppression=bool(request.POST.get("keep_suppression")),
            request=request,
        )
        messages.success(request, done_message(counts))
        return redirect("settings-erasure")


def done_message(counts) -> str:
    total = sum(counts.values())
    messages_deleted = counts.get("msglog.Message", 0)
    return (
        f"Erased: {messages_deleted:,} messages and {total - messages_deleted:,} other records. "
        "The audit log says an erasure happened, without the address."
    )
