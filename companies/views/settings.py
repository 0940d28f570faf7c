"""/settings/: company settings, SMS credits and members.

Every page works on the request's current company only; ids in URLs are looked up
within it, so another company's member answers 404.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import TemplateView
from django_tables2 import SingleTableMixin

from companies import credits, members
from companies.company_settings import CompanySettingsForm, save_settings
from companies.models import CreditLedgerEntry, Membership
from companies.roles import Perm, Role
from companies.tenancy import CompanyRequest, for_company
from companies.views.base import CurrentCompanyMixin
from companies.views.tables import LedgerTable


class SettingsView(CurrentCompanyMixin, TemplateView):
    request: CompanyRequest
    template_name = "companies/settings.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        company = self.company()
        context.setdefault("form", CompanySettingsForm(instance=company))
        context.update(
            company=company,
            members=for_company(Membership.objects.all(), self.request).count(),
            credits_low=credits.is_low(company),
        )
        return context

    def post(self, request: CompanyRequest) -> HttpResponse:
        form = CompanySettingsForm(request.POST, instance=self.company())
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        changed = save_settings(form, request=request)
        messages.success(request, "Settings saved." if changed else "Nothing to change.")
        return redirect("settings")


# --- Credits -------------------------------------------------------------------------------


class TopUpForm(forms.Form):
    amount = forms.IntegerField(
        label="Credits to add",
        min_value=1,
        max_value=credits.MAX_TOP_UP,
        error_messages={
            "min_value": "A top-up adds at least 1 credit.",
            "max_value": f"A single top-up adds at most {credits.MAX_TOP_UP:,} credits.",
            "invalid": "Enter a whole number of credits.",
        },
    )
    note = forms.CharField(max_length=200, required=False, label="Note (invoice, reason)")


class CreditsView(CurrentCompanyMixin, SingleTableMixin, TemplateView):
    """Balance, credits used per month (the accountant's report) and the ledger."""

    request: CompanyRequest
    required_perm = Perm.VIEW_CREDITS
    template_name = "companies/credits.html"
    table_class = LedgerTable
    table_pagination = {"per_page": 50}

    def get_table_data(self) -> QuerySet:
        return for_company(CreditLedgerEntry.objects.all(), self.request).select_related(
            "message", "created_by"
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        company = self.company()
        context.setdefault("top_up_form", TopUpForm())
        context.update(
            company=company,
            per_month=credits.use_per_month(company),
            low_balance=credits.LOW_BALANCE,
            credits_low=credits.is_low(company),
            can_top_up=self.request.user.is_superuser,
        )
        return context

    def post(self, request: CompanyRequest) -> HttpResponse:
        """A platform operator's top-up of the current company."""
        if not request.user.is_superuser:
            raise PermissionDenied("Only platform operators can top up SMS credits.")
        form = TopUpForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(top_up_form=form), status=400)
        company = self.company()
        try:
            balance = credits.top_up(
                company,
                form.cleaned_data["amount"],
                actor=request.user,
                note=form.cleaned_data["note"],
                request=request,
            )
        except credits.CreditError as error:
            form.add_error("amount", str(error))
            return self.render_to_response(self.get_context_data(top_up_form=form), status=400)
        messages.success(
            request, f"Added {form.cleaned_data['amount']:,} credits; the balance is {balance:,}."
        )
        return redirect("settings-credits")


# --- Members -------------------------------------------------------------------------------


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class MembersView(CurrentCompanyMixin, TemplateView):
    request: CompanyRequest
    template_name = "companies/members.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("invite_form", InviteForm())
        context.update(
            company=self.request.company,
            members=for_company(Membership.objects.all(), self.request)
            .select_related("user")
            .order_by("user__username"),
            roles=Role.choices,
        )
        return context

    def post(self, request: CompanyRequest) -> HttpResponse:
        assert request.company is not None  # CurrentCompanyMixin refuses the page without one
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                members.invite(
                    request.company,
                    form.cleaned_data["email"],
                    form.cleaned_data["role"],
                    request=request,
                )
            except members.MemberError as error:
                form.add_error("email", str(error))
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(invite_form=form), status=400)
        messages.success(request, f"Invited {form.cleaned_data['email']}.")
        return redirect("settings-members")


class MemberChangeView(CurrentCompanyMixin, TemplateView):
    """POST only: change one member's role, or remove them (`action` of the URL)."""

    request: CompanyRequest
    action = "role"

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        get_object_or_404(
            for_company(Membership.objects.all(), self.request), pk=kwargs["membership_id"]
        )
        return redirect("settings-members")

    def post(self, request: CompanyRequest, membership_id: int) -> HttpResponse:
        membership = get_object_or_404(
            for_company(Membership.objects.select_related("user"), request), pk=membership_id
        )
        try:
            if self.action == "remove":
                members.remove(membership, request=request)
                messages.success(request, f"Removed {membership.user.get_username()}.")
            else:
                form = RoleForm(request.POST)
                if not form.is_valid():
                    raise members.MemberError("Choose one of the roles.")
                members.change_role(membership, form.cleaned_data["role"], request=request)
                messages.success(
                    request,
                    f"{membership.user.get_username()} is now "
                    f"{Role(form.cleaned_data['role']).label}.",
                )
        except members.MemberError as error:
            messages.error(request, str(error))
        return redirect("settings-members")
