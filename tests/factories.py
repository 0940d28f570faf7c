"""Factories for the test suite. They write outside any company scope, as seeding does."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_scopes import scopes_disabled

from companies.models import Company, Contact, Membership
from companies.roles import Role
from msglog.models import Batch, Message, StatusEvent, Suppression
from msglog.rules.dedupe import dedupe_key
from msglog.rules.kinds import Category, Channel, MessageType
from msglog.rules.statuses import Status
from templates_app.models import MessageTemplate

PASSWORD = "correct horse battery staple"


class ScopelessFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with scopes_disabled():
            return super()._create(model_class, *args, **kwargs)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n}")
    slug = factory.Sequence(lambda n: f"company-{n}")
    sms_credit_balance = 0


class MembershipFactory(ScopelessFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    company = factory.SubFactory(CompanyFactory)
    role = Role.VIEWER


class ContactFactory(ScopelessFactory):
    class Meta:
        model = Contact

    company = factory.SubFactory(CompanyFactory)
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"contact{n}@example.org")
    phone = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")


class TemplateFactory(ScopelessFactory):
    class Meta:
        model = MessageTemplate

    company = factory.SubFactory(CompanyFactory)
    channel = Channel.EMAIL
    category = Category.TRANSACTIONAL
    message_type = MessageType.CONFIRMATION
    name = factory.Sequence(lambda n: f"Template {n}")
    subject = "Your appointment is confirmed"
    text = "Hello {{ first_name }}, see you soon."


class BatchFactory(ScopelessFactory):
    class Meta:
        model = Batch

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Batch {n}")
    channel = Channel.EMAIL


class MessageFactory(ScopelessFactory):
    class Meta:
        model = Message

    company = factory.SubFactory(CompanyFactory)
    channel = Channel.EMAIL
    to_address = factory.Sequence(lambda n: f"recipient{n}@example.org")
    to_name = factory.Faker("name")
    category = Category.TRANSACTIONAL
    message_type = MessageType.CONFIRMATION
    subject = "Your appointment is confirmed"
    body_text = "Hello, see you soon."
    provider = "simulator"
    status = Status.QUEUED


class StatusEventFactory(ScopelessFactory):
    class Meta:
        model = StatusEvent

    message = factory.SubFactory(MessageFactory)
    company = factory.SelfAttribute("message.company")
    status = Status.SENT
    occurred_at = factory.LazyFunction(timezone.now)
    dedupe_key = factory.LazyAttribute(
        lambda e: dedupe_key(e.message.public_id, e.status, e.occurred_at.isoformat())
    )


class SuppressionFactory(ScopelessFactory):
    class Meta:
        model = Suppression

    company = factory.SubFactory(CompanyFactory)
    channel = Channel.EMAIL
    address = factory.Sequence(lambda n: f"suppressed{n}@example.org")
    reason = Suppression.Reason.HARD_BOUNCE
