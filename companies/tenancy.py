"""Tenant isolation: the one place that decides which company a request or task sees.

Every company-owned model has django-scopes' ScopedManager on the `company`
dimension, so a query outside an active scope raises ScopeError (fails closed).
The middleware activates the request's company and renders the response inside
that scope; Celery tasks use :func:`company_scope`. Views still filter by company
explicitly (:func:`for_company`), so a scoping bug alone can never leak data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar, cast

from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django_scopes import scope, scopes_disabled

from companies.models import Company, Membership
from companies.roles import Perm, perms_for

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

SESSION_KEY = "current_company"
ALL_COMPANIES = "all"

_M = TypeVar("_M", bound=Model)


class CompanyRequest(HttpRequest):
    """A request as the views see it: :func:`choose_company` has set its company and role.

    Only a type: at run time it is Django's request, with these attributes set by
    CompanyScopeMiddleware (and ``htmx`` by django-htmx's HtmxMiddleware).
    """

    company: Company | None  # None: no company, or all companies (operators only)
    role: str | None
    perms: frozenset[Perm]
    memberships: list[Membership]
    all_companies: bool
    htmx: HtmxDetails


def memberships_of(user) -> list[Membership]:
    with scopes_disabled():
        return list(Membership.objects.filter(user=user).select_related("company"))


def choose_company(request: CompanyRequest) -> None:
    """Set request.company (None: all companies, operators only), .role and .perms."""
    user = request.user
    request.company = None
    request.role = None
    request.memberships = []
    request.all_companies = False
    if not user.is_authenticated:
        request.perms = frozenset()
        return
    request.memberships = memberships_of(user)
    wanted = request.session.get(SESSION_KEY)
    by_id = {str(m.company_id): m for m in request.memberships}
    if user.is_superuser:
        if wanted and wanted != ALL_COMPANIES:
            request.company = (
                Company.objects.filter(pk=wanted).first() if wanted.isdigit() else None
            )
        request.all_companies = request.company is None
        membership = by_id.get(str(request.company.pk)) if request.company else None
    else:
        membership = by_id.get(str(wanted)) or (
            request.memberships[0] if request.memberships else None
        )
        request.company = membership.company if membership else None
    request.role = membership.role if membership else None
    request.perms = perms_for(user, request.role)


class CompanyScopeMiddleware:
    """Activates the request's company scope and renders the response inside it.

    Anonymous requests get no scope at all: any company data they touch raises.
    A signed-in user with no company gets an empty scope (company__in=[]).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        # Where Django's request becomes a CompanyRequest: choose_company sets its attributes.
        request = cast(CompanyRequest, request)
        choose_company(request)
        if not request.user.is_authenticated:
            return self.get_response(request)
        value: int | list[int] | None
        if request.company is not None:
            value = request.company.pk
        elif request.all_companies:
            value = None  # django-scopes: no filter, every company (operators only)
        else:
            value = []
        with scope(company=value):
            response = self.get_response(request)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
        return response


def for_company(queryset: QuerySet[_M], request: CompanyRequest) -> QuerySet[_M]:
    """Filter a queryset to the request's company, explicitly (belt and braces with scopes)."""
    if request.company is not None:
        return queryset.filter(company=request.company)
    if getattr(request, "all_companies", False):
        return queryset
    return queryset.none()


@contextmanager
def company_scope(company_id: int) -> Iterator[None]:
    """Run a task's body inside one company's scope."""
    with scope(company=company_id):
        yield
