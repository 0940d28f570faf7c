"""Companies (the tenants), their members, contacts and SMS credit ledger."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from companies.managers import CompanyScopedManager
from companies.roles import Role


class Company(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    sms_enabled = models.BooleanField(default=True)
    email_enabled = models.BooleanField(default=True)
    # Whole credits; one SMS segment costs one credit. Kept equal to the ledger's sum.
    sms_credit_balance = models.IntegerField(default=0)
    retention_days = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    contracted = models.BooleanField(
        default=False, help_text="Contracted companies keep their log for 365 days."
    )
    default_region = models.CharField(
        max_length=2, default="US", help_text="Region for phone numbers without a country code."
    )
    timezone = models.CharField(max_length=64, default="UTC")
    tracking_enabled = models.BooleanField(default=False)
    sms_sender = models.CharField(max_length=64, blank=True)
    email_sender = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "companies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sms_credit_balance__gte=0), name="company_credits_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["company__name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "company"], name="one_membership_per_company")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.company} as {self.role}"


class Contact(models.Model):
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True, help_text="E.164")
    external_ref = models.CharField(max_length=100, blank=True)
    email_bounced = models.BooleanField(default=False)
    sms_opted_out = models.BooleanField(default=False)
    marketing_opt_out = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["company", "email"], name="contact_company_email"),
            models.Index(fields=["company", "phone"], name="contact_company_phone"),
        ]

    def __str__(self) -> str:
        return self.name


class CreditLedgerEntry(models.Model):
    """One movement of SMS credits. The amounts of a company's entries sum to its balance."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        CHARGE = "charge", "Charge"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="ledger")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = models.IntegerField(help_text="Positive adds credits, negative spends them.")
    balance_after = models.IntegerField()
    message = models.ForeignKey(
        "msglog.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit ledger entries"
        indexes = [models.Index(fields=["company", "-created_at"], name="ledger_company_time")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:+d}"


class AuditEntry(models.Model):
    """One thing a person did that the company must be able to account for.

    Append-only: rows are written by :func:`companies.audit.record` and never changed;
    saving an existing row or deleting one raises. Erasure leaves an entry
    that says it happened, never the erased data.
    """

    class Action(models.TextChoices):
        LOGIN = "login", "Signed in"
        CONTENT_VIEWED = "content_viewed", "Read message content"
        EXPORT = "export", "Exported"
        BATCH_STOPPED = "batch_stopped", "Stopped a batch"
        BATCH_RESTARTED = "batch_restarted", "Restarted a batch"
        SETTINGS_CHANGED = "settings_changed", "Changed settings"
        MEMBER_CHANGED = "member_changed", "Changed a member"
        CREDITS_TOPPED_UP = "credits_topped_up", "Topped up SMS credits"
        ERASURE = "erasure", "Erased a recipient's data"

    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too: the entry must still say who after the user is deleted.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    summary = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["company", "-created_at"], name="audit_company_time")]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'}: {self.summary}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit entries are append-only.")
