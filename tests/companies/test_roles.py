"""Roles decide what each person may do, through one helper."""

from __future__ import annotations

import pytest

from companies.roles import ROLE_PERMS, Perm, Role, perms_for
from tests.factories import MessageFactory, StatusEventFactory


def test_each_role_may_do_what_the_spec_says():
    assert ROLE_PERMS[Role.ADMIN] == set(Perm)
    assert Perm.VIEW_CONTENT in ROLE_PERMS[Role.SUPPORT]
    assert Perm.EXPORT not in ROLE_PERMS[Role.SUPPORT]
    assert Perm.EXPORT in ROLE_PERMS[Role.ACCOUNTANT]
    assert Perm.VIEW_CONTENT not in ROLE_PERMS[Role.ACCOUNTANT]
    assert ROLE_PERMS[Role.VIEWER] == {Perm.VIEW_LOGS}


@pytest.mark.django_db
def test_superusers_are_operators_with_every_permission(operator):
    assert perms_for(operator.user, None) == set(Perm)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "reads_content"),
    [("admin", True), ("support", True), ("accountant", False), ("viewer", False)],
)
def test_only_admins_and_support_read_message_content(request, acme, persona, reads_content):
    message = MessageFactory(company=acme, subject="Your invoice #991", body_text="Secret body")
    StatusEventFactory(message=message, raw_payload={"Body": "Secret body"})
    page = request.getfixturevalue(persona).client().get(message.get_absolute_url())
    assert page.status_code == 200
    html = page.content.decode()
    assert ("Secret body" in html) is reads_content
    if not reads_content:
        assert "does not include reading message content" in html


@pytest.mark.django_db
def test_django_admin_is_for_operators_only(admin, operator):
    assert admin.client().get("/admin/").status_code == 302  # to the admin's sign-in
    assert admin.client().get("/admin/msglog/message/").status_code == 302
    assert operator.client().get("/admin/msglog/message/").status_code == 200


@pytest.mark.django_db
def test_operators_admin_lists_every_companys_messages(acme, rival, operator):
    MessageFactory(company=acme, to_address="acme@example.org")
    MessageFactory(company=rival, to_address="rival@example.org")
    html = operator.client().get("/admin/msglog/message/").content.decode()
    assert "acme@example.org" in html and "rival@example.org" in html


@pytest.mark.django_db
def test_signing_in_and_out(admin):
    from django.test import Client

    client = Client()
    assert client.get("/logs/").status_code == 302
    response = client.post(
        "/login/", {"username": admin.user.username, "password": "correct horse battery staple"}
    )
    assert response.status_code == 302 and response["Location"] == "/logs/"
    assert client.get("/logs/").status_code == 200
    client.post("/logout/")
    assert client.get("/logs/").status_code == 302


@pytest.mark.django_db
def test_a_wrong_password_is_refused_with_a_clear_message(admin):
    from django.test import Client

    response = Client().post("/login/", {"username": admin.user.username, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
