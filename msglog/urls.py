from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from companies.contact_views import ContactDetailView
from companies.views import switch_company
from templates_app.views import TemplateDetailView

from .views import base, compose, failed, logs, messages
from .views import batches as batch_views

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
