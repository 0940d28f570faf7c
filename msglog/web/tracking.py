"""Our own open pixel and click redirect (the tokens and links are msglog.services.tracking)."""

from __future__ import annotations

import base64

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django_scopes import scopes_disabled

from msglog.models import Message
from msglog.rules.kinds import Channel
from msglog.rules.statuses import Status
from msglog.services import inbound_reports
from msglog.services.tracking import engagement_report, links_of, read_token

PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@never_cache
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    """GET /webhooks/track/open/<token>/: a 1x1 GIF; the open is stored for a worker."""
    public_id, link = read_token(token)
    if link is not None:
        raise Http404("Unknown link.")
    inbound_reports.store([engagement_report(public_id, Status.OPENED, request)])
    return HttpResponse(PIXEL_GIF, content_type="image/gif")


@never_cache
def click_redirect(request: HttpRequest, token: str) -> HttpResponse:
    """GET /webhooks/track/click/<token>/: store the click, go to the message's link."""
    public_id, link = read_token(token)
    if link is None:
        raise Http404("Unknown link.")
    with scopes_disabled():
        body = (
            Message.objects.filter(public_id=public_id, channel=Channel.EMAIL)
            .values_list("body_html", flat=True)
            .first()
        )
    links = links_of(body or "")
    if link >= len(links) or link < 0:
        raise Http404("Unknown link.")
    inbound_reports.store([engagement_report(public_id, Status.CLICKED, request, link)])
    return HttpResponseRedirect(links[link])
