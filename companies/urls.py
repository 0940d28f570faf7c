"""Company administration: settings, credits, members, the
audit log, invitations and the company switcher."""

from django.contrib.auth import views as auth_views
from django.urls import path

from companies.views import settings as settings_views
from companies.views.audit import AuditLogView
from companies.views.switch import switch_company

urlpatterns = [
    path("switch-company/", switch_company, name="switch-company"),
    path("settings/", settings_views.SettingsView.as_view(), name="settings"),
    path("settings/credits/", settings_views.CreditsView.as_view(), name="settings-credits"),
    path("settings/members/", settings_views.MembersView.as_view(), name="settings-members"),
    path(
        "settings/members/<int:membership_id>/role/",
        settings_views.MemberChangeView.as_view(action="role"),
        name="settings-member-role",
    ),
    path(
        "settings/members/<int:membership_id>/remove/",
        settings_views.MemberChangeView.as_view(action="remove"),
        name="settings-member-remove",
    ),
    path("settings/audit/", AuditLogView.as_view(), name="settings-audit"),
    path(
        "invitation/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="registration/invitation.html", success_url="/login/"
        ),
        name="invitation",
    ),
]
