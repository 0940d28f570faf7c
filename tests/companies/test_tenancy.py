"""Tenant isolation fails closed, and another company's objects answer 404 everywhere."""

from __future__ import annotations

import itertools
import re

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_scopes import scope, scopes_disabled
from django_scopes.exceptions import ScopeError

from companies import audit
from companies.models import Company, Contact, CreditLedgerEntry, Membership
from companies.roles import Role
from msglog.models import BatchUpload, DailyRollup, Export, Message
from tests.conftest import Persona
from tests.factories import (
    BatchFactory,
    ContactFactory,
    MembershipFactory,
    MessageFactory,
    StatusEventFactory,
    SuppressionFactory,
    TemplateFactory,
    UserFactory,
)


def scoped_models() -> list:
    """Every model whose default manager is a django-scopes ScopedManager (our
    CompanyScopedManager subclasses the class it makes)."""
    return [
        model
        for model in apps.get_models()
        if any(
            cls.__module__ == "django_scopes.manager"
            for cls in type(model._default_manager).__mro__
        )
        and hasattr(model._default_manager, "with_scope")
    ]


def test_every_company_owned_model_is_scoped():
    owned = {
        model
        for model in apps.get_models()
        if any(getattr(f, "related_model", None) is Company for f in model._meta.fields)
    }
    assert owned and owned <= set(scoped_models())


@pytest.mark.django_db
def test_an_unscoped_query_raises(acme):
    MessageFactory(company=acme)
    with pytest.raises(ScopeError):
        list(Message.objects.all())
    with pytest.raises(ScopeError):
        Contact.objects.filter(name="x").count()
    with scope(company=acme.pk):
        assert Message.objects.count() == 1


@pytest.mark.django_db
def test_a_scope_sees_only_its_company(acme, rival):
    MessageFactory(company=acme)
    MessageFactory(company=rival)
    with scope(company=acme.pk):
        assert set(Message.objects.values_list("company_id", flat=True)) == {acme.pk}
    with scope(company=None):  # operators: every company
        assert Message.objects.count() == 2


# --- The URL walk -------------------------------------------------------------------------


def walk(patterns, prefix="", namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(
                entry.url_patterns, prefix + str(entry.pattern), entry.namespace or namespace
            )
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry, namespace


def object_urls():
    """Every URL pattern that takes an object id, outside the operators-only admin."""
    found = []
    for route, pattern, namespace in walk(get_resolver().url_patterns):
        if namespace == "admin":
            continue  # superusers only, across companies by design; see test_admin_is_*
        converters = pattern.pattern.converters
        if any(is_id(name) for name in converters):
            found.append((route, pattern, converters))
    return found


def is_id(name: str) -> bool:
    return name in {"pk", "id", "public_id"} or name.endswith("_id")


@pytest.fixture
def rival_objects(rival, outsider):
    """One object of every company-owned model, all belonging to Rival Corp."""
    template = TemplateFactory(company=rival, channel="sms")
    with scopes_disabled():
        version = template.publish()
    batch = BatchFactory(company=rival)
    contact = ContactFactory(company=rival)
    message = MessageFactory(
        company=rival, template=template, template_version=version, batch=batch, contact=contact
    )
    event = StatusEventFactory(message=message)
    suppression = SuppressionFactory(company=rival)
    with scopes_disabled():
        ledger = CreditLedgerEntry.objects.create(
            company=rival, kind="top_up", amount=10, balance_after=10
        )
        membership = Membership.objects.get(company=rival)
        rollup = DailyRollup.objects.create(
            company=rival,
            day=message.created_at.date(),
            channel="email",
            category="service",
            message_type="custom",
            status="queued",
            messages=1,
        )
    audit_entry = audit.record(audit.Action.LOGIN, "Signed in", company=rival)
    with scopes_disabled():
        batch_upload = BatchUpload.objects.create(
            company=rival, name="Theirs", template_version=version, report={"valid": 1}
        )
        export = Export.objects.create(
            company=rival, file_format="csv", source="logs", expires_at=timezone.now()
        )
    objects = [
        template,
        version,
        batch,
        contact,
        message,
        event,
        suppression,
        ledger,
        membership,
        rollup,
        audit_entry,
        batch_upload,
        export,
    ]
    assert {type(o) for o in objects} >= set(scoped_models())
    return objects


def candidates(name: str, converter, objects) -> list[str]:
    """Values to put in a URL parameter: ids of the rival's objects of a fitting model."""
    if name == "public_id":
        return [o.public_id for o in objects if hasattr(o, "public_id")]
    stem = name.removesuffix("_id").replace("_", "")
    fitting = [o for o in objects if stem in type(o).__name__.lower()] or objects
    return sorted({str(o.pk) for o in fitting})


def view_methods(pattern) -> list[str]:
    view_class = getattr(pattern.callback, "view_class", None)
    if view_class is None:
        return ["get", "post"]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]


@pytest.mark.django_db
def test_every_object_url_answers_404_with_another_companys_ids(
    acme, rival, rival_objects, outsider
):
    """Acme's admin (who owns nothing yet) tries Rival Corp's ids on every object URL.

    New URLs are covered without editing this test: any parameter named pk, id,
    public_id or <model>_id is filled with the ids of the rival's objects.
    """
    intruder = UserFactory(username="ida.intruder")
    MembershipFactory(user=intruder, company=acme, role=Role.ADMIN)
    intruder_client = Persona(intruder, acme, Role.ADMIN).client()
    owner_client = outsider.client()

    urls = object_urls()
    assert any("messages/" in route for route, _, _ in urls), "the walk found no object URLs"
    checked = 0
    for route, pattern, converters in urls:
        names = list(converters)
        value_lists = [
            candidates(n, converters[n], rival_objects) if is_id(n) else ["csv"] for n in names
        ]
        owner_saw_it = False
        for values in itertools.product(*value_lists):
            kwargs = dict(zip(names, values, strict=True))
            url = fill_route(route, kwargs)
            for method in view_methods(pattern):
                response = getattr(intruder_client, method)(url)
                if response.status_code == 405:
                    continue
                assert response.status_code == 404, (
                    f"{method.upper()} {url} answered "
                    f"{response.status_code} to another company's admin"
                )
                checked += 1
            if owner_client.get(url).status_code != 404:
                owner_saw_it = True
        assert owner_saw_it, f"{route}: not even the owner reached any object; the walk is blind"
    assert checked >= 1


def fill_route(route: str, kwargs: dict) -> str:
    """Fill a route's <converter:name> parts with values."""
    return "/" + re.sub(
        r"<(?:[^>:]+:)?(?P<name>[^>]+)>", lambda m: str(kwargs[m.group("name")]), route
    )


@pytest.mark.django_db
def test_logs_list_only_the_current_companys_messages(acme, rival, admin):
    ours = MessageFactory(company=acme, to_address="ours@example.org")
    MessageFactory(company=rival, to_address="theirs@example.org")
    page = admin.client().get("/logs/").content.decode()
    assert ours.to_address in page
    assert "theirs@example.org" not in page


@pytest.mark.django_db
def test_filter_dropdowns_list_only_the_current_companys_templates(acme, rival, admin):
    TemplateFactory(company=acme, name="Acme reminder")
    TemplateFactory(company=rival, name="Rival secret promo")
    page = admin.client().get("/logs/").content.decode()
    assert "Acme reminder" in page
    assert "Rival secret promo" not in page


@pytest.mark.django_db
def test_filtering_by_another_companys_template_id_is_a_form_error(acme, rival, admin):
    MessageFactory(company=acme, to_address="ours@example.org")
    theirs = TemplateFactory(company=rival)
    response = admin.client().get("/logs/", {"template": theirs.pk})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert "ours@example.org" not in response.content.decode()


@pytest.mark.django_db
def test_a_member_of_two_companies_switches_between_them(acme, rival):
    both = UserFactory(username="bo.both")
    MembershipFactory(user=both, company=acme, role=Role.SUPPORT)
    MembershipFactory(user=both, company=rival, role=Role.VIEWER)
    MessageFactory(company=acme, to_address="acme-only@example.org")
    MessageFactory(company=rival, to_address="rival-only@example.org")
    client = Persona(both, acme, Role.SUPPORT).client()
    client.post("/switch-company/", {"company": acme.pk, "next": "/logs/"})
    assert "acme-only@example.org" in client.get("/logs/").content.decode()
    client.post("/switch-company/", {"company": rival.pk, "next": "/logs/"})
    page = client.get("/logs/").content.decode()
    assert "rival-only@example.org" in page and "acme-only@example.org" not in page


@pytest.mark.django_db
def test_nobody_switches_into_a_company_they_do_not_belong_to(acme, rival, admin):
    client = admin.client()
    assert client.post("/switch-company/", {"company": rival.pk}).status_code == 400
    assert client.post("/switch-company/", {"company": "all"}).status_code == 400


@pytest.mark.django_db
def test_operators_see_all_companies_with_a_company_column(acme, rival, operator):
    MessageFactory(company=acme, to_address="acme-only@example.org")
    MessageFactory(company=rival, to_address="rival-only@example.org")
    client = operator.client()
    client.post("/switch-company/", {"company": "all"})
    page = client.get("/logs/").content.decode()
    assert "acme-only@example.org" in page and "rival-only@example.org" in page
    assert "Rival Corp" in page  # the Company column
    client.post("/switch-company/", {"company": rival.pk})
    page = client.get("/logs/").content.decode()
    assert "rival-only@example.org" in page and "acme-only@example.org" not in page


@pytest.mark.django_db
def test_a_user_without_any_company_sees_nothing(acme):
    MessageFactory(company=acme, to_address="acme-only@example.org")
    loner = Persona(UserFactory(username="lone.wolf"), None, None).client()
    assert loner.get("/logs/").status_code == 403
