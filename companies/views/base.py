"""What every company page shares: sign-in, membership and a role permission."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

from companies.models import Company
from companies.roles import WHY_NOT, Perm, can
from companies.tenancy import CompanyRequest


class CompanyViewMixin(LoginRequiredMixin):
    """Signed in, a member of the current company, holding `required_perm`."""

    request: CompanyRequest
    required_perm: Perm = Perm.VIEW_LOGS

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated and not can(request, self.required_perm):
            raise PermissionDenied(WHY_NOT[self.required_perm])
        return super().dispatch(request, *args, **kwargs)


class CurrentCompanyMixin(CompanyViewMixin):
    """A page about one company: operators looking at all companies pick one first."""

    required_perm = Perm.MANAGE_COMPANY

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated and self.request.company is None:
            raise PermissionDenied("Choose one company in the company switcher first.")
        return super().dispatch(request, *args, **kwargs)

    def company(self) -> Company:
        # Fresh, not the request's copy: the page shows the balance as it is now.
        assert self.request.company is not None  # dispatch refused the page without one
        return Company.objects.get(pk=self.request.company.pk)
