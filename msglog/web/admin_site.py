"""Django admin for platform operators (superusers) only, across every company."""

from functools import wraps

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django_scopes import scopes_disabled


class OperatorAdminSite(admin.AdminSite):
    site_header = "Message Log operations"
    site_title = "Message Log operations"

    def has_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def across_companies(request, *args, **kwargs):
            # Operators see every company here; the view and its rendering run unscoped.
            with scopes_disabled():
                response = inner(request, *args, **kwargs)
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
            return response

        return across_companies


class OperatorAdminConfig(AdminConfig):
    default_site = "msglog.web.admin_site.OperatorAdminSite"
