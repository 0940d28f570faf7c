"""Batches: the list with live progress, New batch, the upload report, the
batch detail (the Logs table narrowed to one batch), Stop and Restart.

Every rule is in :mod:`msglog.services.batches`; these views only check roles and call it.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View
from django.views.generic import ListView

from companies.roles import Perm, can
from companies.tenancy import CompanyRequest, for_company
from companies.views.base import CompanyViewMixin
from msglog.models import Batch, BatchUpload, Message
from msglog.queries import batch_figures
from msglog.queries.filters import MessageFilter
from msglog.rules.statuses import DELIVERED_GROUP, FAILED_GROUP
from msglog.services import batches, uploads
from msglog.web.batch_forms import BatchForm
from msglog.web.logs import LogsView
from templates_app.models import MessageTemplate
from templates_app.versions import current_version

# The batch detail's tabs.
BATCH_TABS: dict[str, tuple[str, Q]] = {
    "all": ("All", Q()),
    "successful": ("Successful", Q(status__in=DELIVERED_GROUP)),
    "failed": ("Failed", Q(status__in=FAILED_GROUP)),
}
LIVE_STATES = (Batch.State.RUNNING, Batch.State.SCHEDULED)


def company_batch(request: CompanyRequest, batch_id: int) -> Batch:
    """The request's company's batch, or 404 (another company's batch does not exist)."""
    return get_object_or_404(
        for_company(Batch.objects.all(), request).select_related(
            "template", "created_by", "stopped_by", "restarted_from"
        ),
        pk=batch_id,
    )


class BatchListView(CompanyViewMixin, ListView):
    """Every batch of the company, ongoing and past, newest first, with its progress."""

    request: CompanyRequest
    model = Batch
    template_name = "msglog/batches.html"
    paginate_by = 25

    def get_template_names(self) -> list[str]:
        if self.request.htmx and self.request.htmx.target == "live":
            return ["msglog/batches.html#live"]
        return [self.template_name]

    def get_queryset(self) -> QuerySet:
        return for_company(Batch.objects.all(), self.request).select_related(
            "template", "created_by", "company"
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        page = context["object_list"]
        context.update(
            rows=[(b, batch_figures.figures(b)) for b in page],
            live=any(b.state in LIVE_STATES for b in page),
            can_manage=can(self.request, Perm.MANAGE_BATCHES),
        )
        return context


class BatchMessageFilter(MessageFilter):
    """The Logs filters, with the batch detail's tabs."""

    TABS = BATCH_TABS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["tab"].extra["choices"] = [(k, label) for k, (label, _) in BATCH_TABS.items()]
        del self.filters["batch"]

    def filter_tab(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(BATCH_TABS[value][1]) if value in BATCH_TABS else queryset


class BatchDetailView(LogsView):
    """One batch: its figures, timeline and links, and its messages with the Logs tools."""

    template_name = "msglog/batch_detail.html"
    filterset_class = BatchMessageFilter
    default_period = "all"
    show_stats = False

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        self.batch = company_batch(self.request, kwargs["batch_id"])
        return super().get(request, *args, **kwargs)

    def get_template_names(self) -> list[str]:
        if self.request.htmx and self.request.htmx.target == "batch-summary":
            return ["msglog/batch_detail.html#summary"]
        return super().get_template_names()

    def base_queryset(self) -> QuerySet:
        return for_company(Message.objects.all(), self.request).filter(batch=self.batch)

    def tabs(self, current: str) -> list[tuple[str, str, str, bool]]:
        base = self.request.GET.copy()
        for name in ("tab", "cursor", "page"):
            base.pop(name, None)
        tabs = []
        for key, (label, _) in BATCH_TABS.items():
            query = base.copy()
            query["tab"] = key
            tabs.append((key, label, query.urlencode(), key == current))
        return tabs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        batch = self.batch
        context.update(
            batch=batch,
            figures=batch_figures.figures(batch),
            timeline=batch_figures.timeline(batch),
            restarts=list(batch.restarts.order_by("created_at")),
            live=batch.state in LIVE_STATES,
            can_manage=can(self.request, Perm.MANAGE_BATCHES),
            can_stop=batches.stoppable(batch),
            can_restart=batches.restartable(batch),
        )
        return context


class StopBatchView(CompanyViewMixin, View):
    request: CompanyRequest
    required_perm = Perm.MANAGE_BATCHES

    def post(self, request: CompanyRequest, batch_id: int) -> HttpResponse:
        batch = company_batch(request, batch_id)
        assert request.user.is_authenticated  # CompanyViewMixin lets no one else in
        result = batches.stop(batch, request.user, request=request)
        if result.stopped:
            unsent = result.canceled or result.canceling
            done = "canceled" if result.canceled or not result.canceling else "being canceled"
            messages.success(
                request,
                f"Stopped. {unsent} unsent message{'s' if unsent != 1 else ''} {done}; "
                f"the {result.already_sent} already handed to the provider are not recalled.",
            )
        else:
            messages.info(
                request, f"This batch is {batch.get_state_display().lower()}: nothing to stop."
            )
        return redirect("batch-detail", batch_id=batch.pk)


class RestartBatchView(CompanyViewMixin, View):
    """GET: what a restart would send and why others are left out; POST: restart."""

    request: CompanyRequest
    required_perm = Perm.MANAGE_BATCHES

    def get(self, request: CompanyRequest, batch_id: int) -> HttpResponse:
        batch = company_batch(request, batch_id)
        plan = batches.restart_plan(batch) if batches.restartable(batch) else None
        context = {"batch": batch, "plan": plan}
        return TemplateResponse(request, "msglog/batch_restart.html", context)

    def post(self, request: CompanyRequest, batch_id: int) -> HttpResponse:
        batch = company_batch(request, batch_id)
        assert request.user.is_authenticated  # CompanyViewMixin lets no one else in
        new = batches.restart(batch, request.user, request=request)
        if new is None:
            messages.info(request, "Nothing to restart: no failed recipient can be tried again.")
            return redirect("batch-detail", batch_id=batch.pk)
        messages.success(
            request, f"Restarted for {new.planned_count} failed recipients as “{new.name}”."
        )
        return redirect("batch-detail", batch_id=new.pk)


class NewBatchView(CompanyViewMixin, View):
    """Choose a template and recipients; the upload is checked before anything is sent."""

    request: CompanyRequest
    required_perm = Perm.MANAGE_BATCHES

    def get(self, request: CompanyRequest) -> HttpResponse:
        if request.company is None:
            return self.page(None)
        return self.page(BatchForm(company=request.company))

    def post(self, request: CompanyRequest) -> HttpResponse:
        if request.company is None:
            return self.page(None, status=400)
        form = BatchForm(request.POST, request.FILES, company=request.company)
        if not form.is_valid():
            return self.page(form, status=400)
        template: MessageTemplate = form.cleaned_data["template"]
        common = {
            "name": form.cleaned_data["name"],
            "template_version": current_version(template, request.user),
            "scheduled_for": form.cleaned_data.get("scheduled_for"),
            "uploaded_by": request.user,
        }
        if form.cleaned_data["source"] == "csv":
            upload_file = form.cleaned_data["csv_file"]
            upload = uploads.upload_csv(
                request.company, data=upload_file.read(), filename=upload_file.name, **common
            )
        else:
            upload = uploads.upload_contacts(request.company, contacts=form.contacts(), **common)
        return redirect("batch-upload", batchupload_id=upload.pk)

    def page(self, form: BatchForm | None, status: int = 200) -> HttpResponse:
        return TemplateResponse(
            self.request, "msglog/batch_new.html", {"form": form}, status=status
        )


class UploadCheckView(CompanyViewMixin, View):
    """The checked upload: what will be sent and what is left out, then Start."""

    request: CompanyRequest
    required_perm = Perm.MANAGE_BATCHES

    def upload(self, request: CompanyRequest, batchupload_id: int) -> BatchUpload:
        uploads = for_company(BatchUpload.objects.all(), request).defer("rows")
        return get_object_or_404(
            uploads.select_related("template_version__template"), pk=batchupload_id
        )

    def get(self, request: CompanyRequest, batchupload_id: int) -> HttpResponse:
        upload = self.upload(request, batchupload_id)
        if upload.batch_id:
            return redirect("batch-detail", batch_id=upload.batch_id)
        report = uploads.UploadCheck.from_json(upload.report)
        context = {"upload": upload, "report": report}
        return TemplateResponse(request, "msglog/batch_upload.html", context)

    def post(self, request: CompanyRequest, batchupload_id: int) -> HttpResponse:
        upload = self.upload(request, batchupload_id)
        report = uploads.UploadCheck.from_json(upload.report)
        if report.error or not report.valid:
            messages.error(request, "There is no recipient to send to in this upload.")
            return redirect("batch-upload", batchupload_id=upload.pk)
        assert request.user.is_authenticated  # CompanyViewMixin lets no one else in
        batch = batches.confirm(upload, request.user)
        messages.success(
            request,
            f"Batch “{batch.name}” created for {batch.planned_count} recipients"
            + (
                f", to start at {batch.scheduled_for:%Y-%m-%d %H:%M} UTC."
                if batch.scheduled_for
                else "; sending has started."
            ),
        )
        return redirect(reverse("batch-detail", kwargs={"batch_id": batch.pk}))
