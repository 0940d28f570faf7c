"""What every company page view shares: sign-in, membership and a role permission."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from companies.roles import WHY_NOT, Perm, can


class CompanyViewMixin(LoginRequiredMixin):
    """Signed in, a member of the current company, holding `required_perm`."""

    required_perm: Perm = Perm.VIEW_LOGS

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated and not can(request, self.required_perm):
            raise PermissionDenied(WHY_NOT[self.required_perm])
        return super().dispatch(request, *args, **kwargs)


def home(request: HttpRequest) -> HttpResponse:
    return redirect("logs" if request.user.is_authenticated else "login")
