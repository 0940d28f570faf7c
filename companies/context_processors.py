from functools import cache

from companies import credits
from companies.models import Company
from companies.roles import Perm
from companies.tenancy import ALL_COMPANIES


def tenancy(request):
    """The current company, the company switcher's choices, and what the user may do."""
    perms: frozenset[Perm] = getattr(request, "perms", frozenset())
    company = getattr(request, "company", None)
    all_companies = getattr(request, "all_companies", False)
    return {
        "current_company": company,
        "all_companies": all_companies,
        "company_choices": cache(lambda: _company_choices(request, company, all_companies)),
        "can": {perm.value: perm in perms for perm in Perm},
        # The Logs page's low-balance warning reads the loaded company: no query.
        "credits_low": company is not None and credits.is_low(company),
    }


def _company_choices(request, company, all_companies) -> list[tuple[str, str, bool]]:
    user = request.user
    if not user.is_authenticated:
        return []
    current = company.pk if company else None
    if user.is_superuser:
        choices = [(ALL_COMPANIES, "All companies", all_companies)]
        roles = {m.company_id: m.get_role_display() for m in request.memberships}
        for pk, name in Company.objects.values_list("pk", "name"):
            label = f"{name} ({roles[pk]})" if pk in roles else name
            choices.append((str(pk), label, pk == current))
        return choices
    return [
        (str(m.company_id), f"{m.company.name} ({m.get_role_display()})", m.company_id == current)
        for m in request.memberships
    ]
