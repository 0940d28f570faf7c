"""Message templates and their immutable versions; a message records the version it used."""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction

from companies.managers import CompanyScopedManager
from msglog.rules.kinds import Category, Channel, MessageType


class MessageTemplate(models.Model):
    company = models.ForeignKey(
        "companies.Company", on_delete=models.CASCADE, related_name="templates"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    category = models.CharField(max_length=20, choices=Category.choices)
    message_type = models.CharField(max_length=30, choices=MessageType.choices)
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    html = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="template_name_per_company")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def current_version(self) -> MessageTemplateVersion | None:
        return self.versions.order_by("-number").first()

    @transaction.atomic
    def publish(self, user=None) -> MessageTemplateVersion:
        """Freeze the template's current content as its next version (or reuse an equal one)."""
        latest = self.versions.select_for_update().order_by("-number").first()
        content = {"subject": self.subject, "text": self.text, "html": self.html}
        if latest and all(getattr(latest, k) == v for k, v in content.items()):
            return latest
        return MessageTemplateVersion.objects.create(
            template=self,
            company_id=self.company_id,
            number=(latest.number + 1) if latest else 1,
            created_by=user,
            **content,
        )


class MessageTemplateVersion(models.Model):
    """A template's content as it was at one time. Never changed once written."""

    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="versions")
    company = models.ForeignKey("companies.Company", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    subject = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    html = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="one_number_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Template versions are immutable; publish a new version instead.")
        super().save(*args, **kwargs)
