"""Personas and shared fixtures.

The story of most tests: Acme's admin, support person, accountant and viewer use the
log; Rival Corp's admin is the outsider who must never see Acme's data; the
operator is a platform superuser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.test import Client

from companies.roles import Role
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.factories import PASSWORD, CompanyFactory, MembershipFactory, UserFactory
from tests.msglog.providers.twilio.twilio_posts import AUTH_TOKEN


@dataclass
class Persona:
    user: object
    company: object | None
    role: str | None

    def client(self) -> Client:
        client = Client()
        assert client.login(username=self.user.username, password=PASSWORD)
        return client


@pytest.fixture
def acme(db):
    return CompanyFactory(name="Acme Clinics", slug="acme", sms_credit_balance=0)


@pytest.fixture
def rival(db):
    return CompanyFactory(name="Rival Corp", slug="rival")


def _member(company, role: str, username: str) -> Persona:
    user = UserFactory(username=username)
    MembershipFactory(user=user, company=company, role=role)
    return Persona(user=user, company=company, role=role)


@pytest.fixture
def admin(acme) -> Persona:
    return _member(acme, Role.ADMIN, "ada.admin")


@pytest.fixture
def support(acme) -> Persona:
    return _member(acme, Role.SUPPORT, "sam.support")


@pytest.fixture
def accountant(acme) -> Persona:
    return _member(acme, Role.ACCOUNTANT, "alex.accountant")


@pytest.fixture
def viewer(acme) -> Persona:
    return _member(acme, Role.VIEWER, "val.viewer")


@pytest.fixture
def outsider(rival) -> Persona:
    return _member(rival, Role.ADMIN, "otto.outsider")


@pytest.fixture
def operator(db) -> Persona:
    user = UserFactory(username="olga.operator", is_superuser=True, is_staff=True)
    return Persona(user=user, company=None, role=None)


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does).")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests
    # make between browser steps are still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def webhook_settings(settings):
    """The providers' webhook secrets, and the canonical URL their signatures cover."""
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.PUBLIC_BASE_URL = "https://msglog.example.com"
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": ["old-user:old-secret", "hook-user:hook-secret"],
        "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-signing-key-123",
    }
    return settings
