"""Template detail: an admin checks a template's versions, its preview and how it fared.

The story: Acme's appointment confirmation email was published twice by its admin. Its
HTML carries a hostile `<script>` and an event handler (pasted from somewhere), which the
preview must never run. Ten messages were sent with it; the accountant may see how they
fared but not what they said. Rival Corp's admin must not learn the template exists.
"""

from __future__ import annotations

import html
import re

import pytest
from django_scopes import scopes_disabled

from companies.roles import WHY_NOT, Perm
from msglog.rules.statuses import Status
from templates_app.preview import SAMPLE_DATA, fill, preview
from templates_app.rendering import placeholders
from tests.factories import MessageFactory, TemplateFactory

HOSTILE_HTML = (
    '<p onclick="steal()">Hello {{ first_name }},</p>'
    '<script>alert("pwned")</script>'
    '<p>See you on {{ appointment_date }}. <a href="javascript:steal()">Manage</a></p>'
    "<p>{{ loyalty_points }} points</p>"
)


@pytest.fixture
def confirmation(acme, admin):
    template = TemplateFactory(
        company=acme,
        name="Appointment confirmation",
        subject="Confirmed: {{ appointment_date }}",
        text="Hello {{ first_name }}, first wording.",
        html=HOSTILE_HTML,
    )
    with scopes_disabled():
        v1 = template.publish(user=admin.user)
        template.text = "Hello {{ first_name }}, see you soon."
        template.save()
        v2 = template.publish(user=admin.user)
    outcomes = {
        v1: [Status.DELIVERED, Status.DELIVERED, Status.OPENED, Status.BOUNCED],
        v2: [Status.DELIVERED, Status.CLICKED, Status.SENT, Status.SENT, Status.FAILED],
    }
    for version, statuses in outcomes.items():
        for status in statuses:
            MessageFactory(company=acme, template=template, template_version=version, status=status)
    MessageFactory(company=acme, template=template, status=Status.DELIVERED)  # before versions
    MessageFactory(company=acme, status=Status.FAILED)  # another template's
    return template


def url(template) -> str:
    return f"/templates/{template.pk}/"


def srcdoc(page: str) -> str:
    match = re.search(r'<iframe[^>]*\ssrcdoc="([^"]*)"', page)
    assert match, "no preview frame"
    return html.unescape(match.group(1))


@pytest.mark.django_db
def test_support_sees_the_template_its_versions_and_a_safe_preview(support, confirmation):
    response = support.client().get(url(confirmation))
    assert response.status_code == 200
    page = response.content.decode()

    assert "Appointment confirmation" in page
    assert [v.number for v in response.context["versions"]] == [2, 1]
    assert "first wording" in page  # v1's content, in its expandable row
    assert "see you soon" in page
    assert "ada.admin" in page  # who published

    frame = srcdoc(page)
    assert "Hello Jane," in frame and SAMPLE_DATA["appointment_date"] in frame
    assert "<script" not in frame and "pwned" not in frame
    assert "onclick" not in frame and "javascript:" not in frame
    assert "{{ loyalty_points }}" in frame  # no sample value: shown as written
    assert re.search(r"<iframe[^>]*\ssandbox[\s>]", page)
    assert "allow-scripts" not in page
    # The hostile markup appears on the page only as escaped source text.
    assert '<script>alert("pwned")' not in page
    assert "loyalty_points" in re.sub(r"<[^>]+>", "", page)  # named as missing sample data


@pytest.mark.django_db
def test_figures_count_each_version_and_the_whole(support, confirmation):
    response = support.client().get(url(confirmation))
    figures = response.context["figures"]
    assert (figures.total, figures.delivered, figures.failed, figures.opened) == (10, 6, 2, 2)
    assert figures.delivered_rate == "60%" and figures.failed_rate == "20%"
    assert figures.opened_rate == "33%"  # of delivered
    assert figures.in_progress == 2

    by_number = {v.number: f for v, f in response.context["version_rows"]}
    assert (by_number[1].total, by_number[1].delivered, by_number[1].failed) == (4, 3, 1)
    assert (by_number[2].total, by_number[2].delivered, by_number[2].failed) == (5, 2, 1)
    assert response.context["unversioned"].total == 1

    page = response.content.decode()
    assert f'href="/logs/?template={confirmation.pk}' in page


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["accountant", "viewer"])
def test_roles_without_content_see_figures_and_why_not_the_content(request, confirmation, persona):
    response = request.getfixturevalue(persona).client().get(url(confirmation))
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["figures"].total == 10
    assert "60%" in page
    assert WHY_NOT[Perm.VIEW_CONTENT] in page
    for secret in ("see you soon", "first wording", "Confirmed:", "srcdoc", "pwned"):
        assert secret not in page


@pytest.mark.django_db
def test_an_sms_template_previews_with_its_segment_count(support, acme):
    template = TemplateFactory(
        company=acme,
        channel="sms",
        name="Reminder",
        subject="",
        text="Hi {{ first_name }}, your visit costs {{ amount }} or 110 €. " + "x" * 120,
    )
    page = support.client().get(url(template)).content.decode()
    assert "Hi Jane, your visit costs $120.00" in page
    assert "2 segments" in page and "GSM-7" in page
    assert "<iframe" not in page


@pytest.mark.django_db
def test_another_companys_template_is_not_found(admin, outsider, confirmation, rival):
    assert outsider.client().get(url(confirmation)).status_code == 404
    theirs = TemplateFactory(company=rival, name="Rival promo")
    assert admin.client().get(url(theirs)).status_code == 404
    assert admin.client().get("/templates/999999/").status_code == 404


@pytest.mark.django_db
def test_operators_open_any_companys_template(operator, confirmation):
    client = operator.client()
    client.post("/switch-company/", {"company": "all"})
    response = client.get(url(confirmation))
    assert response.status_code == 200
    assert response.context["figures"].total == 10


@pytest.mark.django_db
def test_the_page_costs_a_fixed_number_of_queries(
    support, confirmation, django_assert_max_num_queries
):
    client = support.client()
    client.get(url(confirmation))
    with django_assert_max_num_queries(8):
        assert client.get(url(confirmation)).status_code == 200


# --- The preview on its own ---------------------------------------------------------------


def test_placeholders_are_filled_by_substitution_only():
    data = {"first_name": "<b>Jo</b>"}
    assert placeholders("{{first_name}} {{ x }} {{ first_name }}") == ["first_name", "x"]
    assert fill("Hi {{first_name}}!", data) == "Hi <b>Jo</b>!"
    assert fill("Hi {{ first_name }}!", data, escape=True) == "Hi &lt;b&gt;Jo&lt;/b&gt;!"
    # Template language is not run: tags, filters and attribute lookups stay inert text.
    inert = "{% load x %}{{ first_name|upper }}{{ request.user }}"
    assert fill(inert, data) == inert


def test_sample_values_cannot_inject_markup_into_the_html_preview():
    class Content:
        subject = ""
        text = "Hi {{ first_name }}"
        html = "<p>Hi {{ first_name }}</p>"

    shown = preview(Content, "email", {"first_name": '<img src=x onerror="alert(1)">'})
    assert "<img" not in shown.document  # the value stays text: nothing can load or run
    assert "&lt;img" in shown.document
