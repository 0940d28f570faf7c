"""Compose: send one message from a template to a contact or an address.

The page only records and enqueues through :func:`sending.send`; no provider is ever
called from the web process. A live preview (htmx) shows the message exactly as it
would be sent, and what the send would record when it cannot be sent.

One URL answers everything: GET the page; POST with ``preview`` re-renders the
preview (only the ``preview`` partial for htmx, the whole page without JavaScript);
POST with ``part=compose`` re-renders the form for a newly chosen template (its
placeholders change); POST with ``part=contacts`` re-lists the contacts matching the
search; any other POST sends.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from companies.roles import WHY_NOT, Perm, can
from companies.tenancy import CompanyRequest
from companies.views.base import CompanyViewMixin
from msglog.models import Message
from msglog.rules.kinds import Channel
from msglog.rules.statuses import NEVER_SENT, Status
from msglog.services import sending
from msglog.web.forms import ComposeForm
from templates_app.models import MessageTemplate
from templates_app.versions import current_version

TEMPLATE = "msglog/compose.html"
PARTS = {"compose", "contacts", "preview"}


# never_cache: going Back to the page fetches a fresh form, with a fresh idempotency key.
@method_decorator(never_cache, name="dispatch")
class ComposeView(CompanyViewMixin, View):
    """The Compose page for the current company; operators must pick a company first."""

    request: CompanyRequest
    required_perm = Perm.SEND

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated and not can(request, self.required_perm):
            # A 403 that says why, on the page itself (the site has no 403 template).
            context = {"why_not": WHY_NOT[self.required_perm]}
            return TemplateResponse(request, TEMPLATE, context, status=403)
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: CompanyRequest) -> HttpResponse:
        if request.company is None:
            return self.page(None)
        initial = {k: request.GET[k] for k in ("template", "contact") if request.GET.get(k)}
        form = ComposeForm(company=request.company, initial=initial)
        return self.page(form, preview=form.preview())

    def post(self, request: CompanyRequest) -> HttpResponse:
        if request.company is None:
            return self.page(None, status=400)
        form = ComposeForm(request.POST, company=request.company)
        part = request.POST.get("part", "")
        if part in PARTS or "preview" in request.POST or "find" in request.POST:
            # Never a send. htmx gets only the part that changes; without JavaScript (the
            # Preview and Find buttons) the whole page. Field errors wait for a send.
            live = part != "contacts"
            part = part if part in PARTS and request.htmx else ""
            return self.page(form, preview=form.preview() if live else None, part=part)
        if not form.is_valid():
            return self.page(form, preview=form.preview(), show_errors=True)
        return self.send(form)

    def send(self, form: ComposeForm) -> HttpResponse:
        request, company = self.request, self.request.company
        assert company is not None  # post() answers 400 without a company
        assert request.user.is_authenticated  # CompanyViewMixin lets no one else in
        key = form.cleaned_data["idempotency_key"]
        earlier = sending.sent_with_key(company, key)
        if earlier is not None:
            # A double submit (or a resubmit of the same page): the first send stands.
            messages.info(request, "This form was already sent: nothing new was sent.")
            return redirect(earlier.get_absolute_url())
        template: MessageTemplate = form.cleaned_data["template"]
        message = sending.send(
            company,
            channel=template.channel,
            recipient=form.recipient(),
            category=template.category,
            message_type=template.message_type,
            template_version=current_version(template, request.user),
            created_by=request.user,
            scheduled_for=form.cleaned_data.get("scheduled_for"),
            idempotency_key=key,
        )
        level, note = outcome(message, form)
        messages.add_message(request, level, note)
        return redirect(message.get_absolute_url())

    def page(
        self,
        form: ComposeForm | None,
        *,
        preview=None,
        part: str = "",
        show_errors: bool = False,
        status: int = 200,
    ) -> HttpResponse:
        company = self.request.company
        context = {
            "form": form,
            "preview": preview,
            "show_errors": show_errors,
            "disabled_channels": disabled_channels(company) if company else [],
        }
        name = f"{TEMPLATE}#{part}" if part else TEMPLATE
        response = TemplateResponse(self.request, name, context, status=status)
        # The same URL answers a page or a part: caches must keep them apart.
        patch_vary_headers(response, ["HX-Request"])
        return response


def disabled_channels(company) -> list[str]:
    """The channels this company cannot send on: a send there ends as channel_disabled."""
    switches = [(Channel.SMS, company.sms_enabled), (Channel.EMAIL, company.email_enabled)]
    return [Channel(channel).label for channel, enabled in switches if not enabled]


def outcome(message: Message, form: ComposeForm) -> tuple[int, str]:
    """The flash message that says where a just-sent message stands."""
    to = message.to_name or message.to_address
    if message.to_name:
        to = f"{message.to_name} ({message.to_address})"
    what = f"{message.get_channel_display()} to {to}"
    if message.status in NEVER_SENT:
        return messages.WARNING, (
            f"Not sent: {message.status_reason} "
            f"It is in the log as “{message.get_status_display()}”."
        )
    credits = ""
    if message.channel == Channel.SMS:
        credits = f" {message.credits} credit{'s' if message.credits != 1 else ''} reserved."
    if message.status == Status.SCHEDULED:
        when = timezone.localtime(message.scheduled_for, form.tz)
        return messages.SUCCESS, f"Scheduled: {what}, for {when:%Y-%m-%d %H:%M %Z}.{credits}"
    return messages.SUCCESS, f"Queued: {what}. It goes out in a moment.{credits}"
