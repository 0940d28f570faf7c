"""One message: the slide-in panel, its own page, and its content in isolation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseForbidden
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.generic import DetailView

from companies.roles import WHY_NOT, Perm, can
from companies.tenancy import CompanyRequest, for_company
from companies.views.base import CompanyViewMixin
from msglog.models import Message, StatusEvent
from msglog.queries.suppressions import suppression_reason
from msglog.rules.content import content_security_policy, html_document
from msglog.rules.errors import Explanation, FixAt, explain, explain_code
from msglog.rules.kinds import Channel
from msglog.rules.statuses import DELIVERED_GROUP, MEANING, NEVER_SENT, Status, display_words
from msglog.services.content_reads import content_viewed


def url_or_none(name: str, *args: object) -> str | None:
    """The URL of a named route, or None while that page does not exist (yet).

    The contact, template, batch and settings pages are built by other issues; the
    detail links to them as soon as their routes are there, and never breaks before.
    """
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def company_timezone(message: Message) -> ZoneInfo:
    """The message's company's time zone (operators see each message in its own)."""
    try:
        return ZoneInfo(message.company.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class Stage:
    label: str
    at: datetime | None


@dataclass(frozen=True)
class FixLink:
    url: str
    text: str


def stages_of(message: Message) -> list[Stage]:
    """The stage timestamps the detail shows, in the order a message goes through them."""
    stages = [Stage("Queued", message.created_at)]
    if message.scheduled_for:
        stages.append(Stage("Scheduled for", message.scheduled_for))
    stages += [Stage("Sent", message.sent_at), Stage("Delivered", message.delivered_at)]
    if message.channel == Channel.EMAIL:  # SMS has no open or click tracking
        stages += [Stage("Opened", message.opened_at), Stage("Clicked", message.clicked_at)]
    stages.append(Stage("Failed", message.failed_at))
    return stages


def links_of(message: Message) -> dict[str, str | None]:
    """Links to the pages around a message, each only if its route exists."""
    return {
        "contact": url_or_none("contact-detail", message.contact_id)
        if message.contact_id
        else None,
        "template": url_or_none("template-detail", message.template_id)
        if message.template_id
        else None,
        "batch": url_or_none("batch-detail", message.batch_id) if message.batch_id else None,
        "settings": url_or_none("company-settings") or url_or_none("settings"),
    }


def fix_link(explanation: Explanation | None, links: dict[str, str | None]) -> FixLink | None:
    """Where the person fixes the cause, as a link, when that page exists."""
    if explanation is None:
        return None
    url = {
        FixAt.CONTACT: links["contact"],
        FixAt.TEMPLATE: links["template"],
        FixAt.BATCH: links["batch"],
        FixAt.COMPANY_SETTINGS: links["settings"],
    }.get(explanation.fix_at)
    return FixLink(url, explanation.fix_link_text) if url else None


def pretty_json(payload: object) -> str:
    """A provider's raw payload as people read JSON: indented, keys sorted."""
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def find_message(request: CompanyRequest, public_id: str, *related: str) -> Message:
    """The request's company's message by public id; another company's answers 404."""
    messages = for_company(Message.objects.all(), request).select_related("company", *related)
    return get_object_or_404(messages, public_id=public_id)


class MessageDetailView(CompanyViewMixin, DetailView):
    """One message: where it stands, its timeline, why it failed and (for roles that may)
    its content. An htmx request gets only the `detail` partial, for the Logs panel."""

    request: CompanyRequest
    template_name = "msglog/message_detail.html"
    context_object_name = "message"

    @property
    def in_panel(self) -> bool:
        """An htmx request for the panel; boosted links and history restores want a page."""
        htmx = self.request.htmx
        return bool(htmx) and not htmx.boosted and not htmx.history_restore_request

    def get_template_names(self) -> list[str]:
        if self.in_panel:
            return [f"{self.template_name}#detail"]
        return [self.template_name]

    def get_object(self, queryset=None) -> Message:
        return find_message(
            self.request,
            self.kwargs["public_id"],
            "template",
            "template_version",
            "batch",
            "contact",
        )

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        message: Message = self.object
        may_read_content = can(self.request, Perm.VIEW_CONTENT)
        events = list(
            StatusEvent.objects.filter(
                company_id=message.company_id, message_id=message.pk
            ).order_by("occurred_at", "id")
        )
        for event in events:
            event.explanation = explain_code(
                event.error_code,
                event.error_message,
                channel=message.channel,
                provider=message.provider,
            )
            # Raw payloads are content (they carry the text and addresses): never built
            # for a role that may not read it.
            event.payload_json = pretty_json(event.raw_payload) if may_read_content else ""
        why_suppressed = suppression_reason(message) if message.status == Status.SUPPRESSED else ""
        explanation = explain(message, suppression_reason=why_suppressed)
        links = links_of(message)
        context.update(
            events=events,
            stages=stages_of(message),
            company_tz=company_timezone(message),
            status_words=display_words(message.status),
            status_meaning=MEANING[Status(message.status)],
            never_sent=message.status in NEVER_SENT,
            # A delivered multi-segment SMS may keep a failed segment's error.
            delivered_with_error=bool(explanation) and message.status in DELIVERED_GROUP,
            explanation=explanation,
            fix_link=fix_link(explanation, links),
            links=links,
            may_read_content=may_read_content,
            why_no_content=WHY_NOT[Perm.VIEW_CONTENT],
            has_html=bool(message.body_html.strip()),
            in_panel=self.in_panel,
        )
        if may_read_content:
            content_viewed(self.request, message, part="detail")
        return context

    def render_to_response(self, context, **response_kwargs) -> HttpResponse:
        response = super().render_to_response(context, **response_kwargs)
        # The same URL answers a panel or a page: caches must keep them apart.
        patch_vary_headers(response, ["HX-Request"])
        return response


@method_decorator(xframe_options_sameorigin, name="dispatch")
class MessageContentView(CompanyViewMixin, DetailView):
    """The email's HTML, sanitized, as a document for the detail's sandboxed iframe.

    Served from its own URL under a CSP that allows no script and no load but images,
    and frameable only by our own pages.
    """

    request: CompanyRequest
    required_perm = Perm.VIEW_CONTENT

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Say why in the answer itself: this is shown inside a frame, not as a page.
        if request.user.is_authenticated and not can(request, self.required_perm):
            return HttpResponseForbidden(WHY_NOT[self.required_perm], content_type="text/plain")
        return super().dispatch(request, *args, **kwargs)

    def get_object(self, queryset=None) -> Message:
        return find_message(self.request, self.kwargs["public_id"])

    def render_to_response(self, context, **response_kwargs) -> HttpResponse:
        message: Message = self.object
        content_viewed(self.request, message, part="html")
        html = message.body_html or format_html("<pre>{}</pre>", message.body_text)
        response = HttpResponse(html_document(html))
        remote_images = self.request.GET.get("images") == "remote"
        response["Content-Security-Policy"] = content_security_policy(remote_images)
        response["Referrer-Policy"] = "no-referrer"  # image hosts must not learn our URLs
        add_never_cache_headers(response)  # content stays out of shared caches
        return response
