"""Publishing a template's versions: a send always uses an immutable version."""

from __future__ import annotations

from django.db import IntegrityError

from templates_app.models import MessageTemplate, MessageTemplateVersion


def current_version(template: MessageTemplate, user) -> MessageTemplateVersion:
    """The version a send from `template` uses, publishing the first one if need be."""
    version = template.current_version
    if version is not None:
        return version
    try:
        return template.publish(user)
    except IntegrityError:
        # A concurrent send published version 1 first (same content): use that one.
        version = template.current_version
        assert version is not None  # the version that made this publish collide
        return version
