"""The log's pages: Logs, messages, Failed, Compose, batches, exports, a
contact's and a template's history, erasure, and our own open and click tracking."""

from django.contrib.auth import views as auth_views
from django.urls import path

from msglog.web import (
    batches,
    compose,
    contacts,
    erasure,
    exports,
    failed,
    home,
    logs,
    messages,
    tracking,
)
from msglog.web.template_detail import TemplateDetailView

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
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
    path("contacts/<int:contact_id>/", contacts.ContactDetailView.as_view(), name="contact-detail"),
    path(
        "contacts/<int:contact_id>/erase/",
        erasure.ContactErasureView.as_view(),
        name="contact-erase",
    ),
    path("settings/erasure/", erasure.ErasureView.as_view(), name="settings-erasure"),
    # Batches
    path("batches/", batches.BatchListView.as_view(), name="batches"),
    path("batches/new/", batches.NewBatchView.as_view(), name="batch-new"),
    path(
        "batches/uploads/<int:batchupload_id>/",
        batches.UploadCheckView.as_view(),
        name="batch-upload",
    ),
    path("batches/<int:batch_id>/", batches.BatchDetailView.as_view(), name="batch-detail"),
    path("batches/<int:batch_id>/stop/", batches.StopBatchView.as_view(), name="batch-stop"),
    path(
        "batches/<int:batch_id>/restart/",
        batches.RestartBatchView.as_view(),
        name="batch-restart",
    ),
    # Exports
    path("exports/", exports.ExportListView.as_view(), name="exports"),
    path("exports/new/", exports.ExportCreateView.as_view(), name="export-create"),
    path("exports/<str:public_id>/", exports.ExportDetailView.as_view(), name="export-detail"),
    path(
        "exports/<str:public_id>/download/",
        exports.ExportDownloadView.as_view(),
        name="export-download",
    ),
    # Our own open and click tracking: these URLs are in emails already sent.
    path("webhooks/track/open/<str:token>/", tracking.open_pixel, name="track-open"),
    path("webhooks/track/click/<str:token>/", tracking.click_redirect, name="track-click"),
]
