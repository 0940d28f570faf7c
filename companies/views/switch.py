"""Switching the company a user is looking at."""

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from companies.models import Company
from companies.tenancy import ALL_COMPANIES, SESSION_KEY, memberships_of


@require_POST
def switch_company(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    wanted = request.POST.get("company", "")
    allowed = {str(m.company_id) for m in memberships_of(request.user)}
    if request.user.is_superuser:
        allowed |= {str(pk) for pk in Company.objects.values_list("pk", flat=True)}
        allowed.add(ALL_COMPANIES)
    if wanted not in allowed:
        return HttpResponseBadRequest("You are not a member of that company.")
    request.session[SESSION_KEY] = wanted
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        next_url = "/logs/"
    return redirect(next_url)
