"""The site's root: the Logs page for people signed in, else the sign-in page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def home(request: HttpRequest) -> HttpResponse:
    return redirect("logs" if request.user.is_authenticated else "login")
