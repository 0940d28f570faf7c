from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from companies import settings_views
from companies.audit_views import AuditLogView
from companies.contact_views import ContactDetailView
from companies.views import switch_company
from templates_app.views import TemplateDetailView

from .views import base, compose, erasure, failed, logs, messages
from .views import batches as batch_views
from .views import exports as export_views

urlpatterns = [
    path("", base.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("switch-company/", switch_company, name="switch-company"),
    path("logs/", logs.LogsView.as_view(), name="logs"),
    path("logs/columns/", logs.ColumnChoiceView.as_view(), name="log-columns"),
    path("messages/<str:public_id>/", messages.MessageDetailView.as_view(), name="message-detail"),
    path(
        "messages/<str:public_id>/content/",
        messages.MessageContentView.as_view(),
        name="message-content",
    ),
    path("failed/", failed.FailedView.as_view(), name="failed"),
    path("compose/", compose.ComposeView.as_view(), name="compose"),
    path("templates/<int:template_id>/", TemplateDetailView.as_view(), name="template-detail"),
    path("contacts/<int:contact_id>/", ContactDetailView.as_view(), name="contact-detail"),
    path("admin/", admin.site.urls),
]

# Batches (issue 6)
urlpatterns += [
    path("batches/", batch_views.BatchListView.as_view(), name="batches"),
    path("batches/new/", batch_views.NewBatchView.as_view(), name="batch-new"),
    path(
        "batches/uploads/<int:batchupload_id>/",
        batch_views.UploadReportView.as_view(),
        name="batch-upload",
    ),
    path("batches/<int:batch_id>/", batch_views.BatchDetailView.as_view(), name="batch-detail"),
    path("batches/<int:batch_id>/stop/", batch_views.StopBatchView.as_view(), name="batch-stop"),
    path(
        "batches/<int:batch_id>/restart/",
        batch_views.RestartBatchView.as_view(),
        name="batch-restart",
    ),
]

# --- Company administration and the data lifecycle (issue 8) -------------------------------
urlpatterns += [
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
    path("settings/erasure/", erasure.ErasureView.as_view(), name="settings-erasure"),
    path(
        "contacts/<int:contact_id>/erase/",
        erasure.ContactErasureView.as_view(),
        name="contact-erase",
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

# Provider webhooks and tracking (msglog/webhooks).
urlpatterns += [path("webhooks/", include("msglog.webhooks.urls"))]

# Exports (issue 7)
urlpatterns += [
    path("exports/", export_views.ExportListView.as_view(), name="exports"),
    path("exports/new/", export_views.ExportCreateView.as_view(), name="export-create"),
    path("exports/<str:public_id>/", export_views.ExportDetailView.as_view(), name="export-detail"),
    path(
        "exports/<str:public_id>/download/",
        export_views.ExportDownloadView.as_view(),
        name="export-download",
    ),
]
