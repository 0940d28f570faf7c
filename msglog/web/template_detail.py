"""Template detail: the template as used, its versions, a preview and how its messages fared."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import DetailView

from companies.roles import WHY_NOT, Perm, can
from companies.tenancy import CompanyRequest, for_company
from companies.views.base import CompanyViewMixin
from msglog.models import Message
from msglog.queries.failures import percent
from msglog.rules.statuses import DELIVERED_GROUP, FAILED_GROUP, Status
from templates_app.models import MessageTemplate, MessageTemplateVersion
from templates_app.preview import preview

OPENED = Q(opened_at__isnull=False) | Q(status__in=[Status.OPENED, Status.CLICKED])


@dataclass
class Figures:
    """How messages fared: counts, and rates as the page prints them."""

    total: int = 0
    delivered: int = 0
    failed: int = 0
    opened: int = 0

    def add(self, other: Figures) -> None:
        self.total += other.total
        self.delivered += other.delivered
        self.failed += other.failed
        self.opened += other.opened

    @property
    def in_progress(self) -> int:
        return self.total - self.delivered - self.failed

    @staticmethod
    def _rate(part: int, whole: int) -> str:
        return percent(part / whole) if whole else "—"

    @property
    def delivered_rate(self) -> str:
        return self._rate(self.delivered, self.total)

    @property
    def failed_rate(self) -> str:
        return self._rate(self.failed, self.total)

    @property
    def opened_rate(self) -> str:
        """Opened of delivered: an email that never arrived could not be opened."""
        return self._rate(self.opened, self.delivered)


def figures_by_version(messages) -> dict[int | None, Figures]:
    """One aggregate query: each version's figures (None: messages sent without one)."""
    rows = (
        messages.values("template_version_id")
        .annotate(
            total=Count("id"),
            delivered=Count("id", filter=Q(status__in=DELIVERED_GROUP)),
            failed=Count("id", filter=Q(status__in=FAILED_GROUP)),
            opened=Count("id", filter=OPENED),
        )
        .order_by()
    )
    return {
        row["template_version_id"]: Figures(
            row["total"], row["delivered"], row["failed"], row["opened"]
        )
        for row in rows
    }


class TemplateDetailView(CompanyViewMixin, DetailView):
    """One template. Figures for every role that sees the log; content only for some."""

    request: CompanyRequest
    template_name = "templates_app/template_detail.html"
    context_object_name = "message_template"

    def get_object(self, queryset=None) -> MessageTemplate:
        templates = for_company(MessageTemplate.objects.all(), self.request)
        return get_object_or_404(templates.select_related("company"), pk=self.kwargs["template_id"])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        template: MessageTemplate = self.object
        may_read_content = can(self.request, Perm.VIEW_CONTENT)
        messages = for_company(Message.objects.all(), self.request).filter(
            company_id=template.company_id, template=template
        )
        by_version = figures_by_version(messages)
        total = Figures()
        for figures in by_version.values():
            total.add(figures)
        versions: list[MessageTemplateVersion] = list(
            template.versions.select_related("created_by").order_by("-number")
        )
        version_rows = [(v, by_version.get(v.pk, Figures())) for v in versions]
        context.update(
            versions=versions,
            version_rows=version_rows,
            unversioned=by_version.get(None),
            figures=total,
            logs_url=f"{reverse('logs')}?{urlencode({'template': template.pk, 'period': 'all'})}",
            may_read_content=may_read_content,
            why_no_content=WHY_NOT[Perm.VIEW_CONTENT],
            preview=preview(template, template.channel) if may_read_content else None,
        )
        return context
