"""Export menu, Exports page and downloads (the rules are in msglog/services/exports/)."""

from __future__ import annotations

import tempfile

from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from django.views.generic import DetailView, ListView

from companies.roles import WHY_NOT, Perm, can
from companies.tenancy import CompanyRequest, for_company
from companies.views.base import CompanyViewMixin
from msglog.models import Export
from msglog.queries.pagination import capped_count
from msglog.services import exports
from msglog.services.exports import csv_file, excel_file, jobs
from msglog.services.exports.selection import Selection, select


def export_error(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "msglog/export_error.html", {"message": message}, status=status)


class ExportCreateView(CompanyViewMixin, View):
    """The Export menu's buttons: the file itself, or a background job for a big one."""

    request: CompanyRequest
    required_perm = Perm.EXPORT

    def post(self, request: CompanyRequest) -> HttpResponseBase:
        file_format = request.POST.get("format", "")
        if file_format not in exports.FORMATS:
            return export_error(request, "Choose CSV or Excel (.xlsx).")
        try:
            selection = select(
                company=request.company,
                all_companies=request.all_companies,
                source=request.POST.get("source", "logs"),
                source_id=request.POST.get("source_id"),
                query=request.POST.get("query", ""),
                include_content=can(request, Perm.VIEW_CONTENT),
            )
        except exports.ExportError as error:
            return export_error(request, str(error))
        limit = jobs.inline_limit(file_format)
        rows, more = capped_count(selection.queryset, cap=limit)
        if more:
            return self.in_background(request, selection, file_format)
        jobs.record_export(selection, file_format, rows, request=request)
        name = jobs.file_name(selection, file_format)
        content_type = exports.FORMATS[file_format][1]
        if file_format == "csv":
            response = StreamingHttpResponse(
                csv_file.csv_chunks(selection), content_type=content_type
            )
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        spool = tempfile.TemporaryFile()  # noqa: SIM115 — FileResponse closes it when sent
        excel_file.write_xlsx(selection, spool)
        spool.seek(0)
        return FileResponse(spool, as_attachment=True, filename=name, content_type=content_type)

    def in_background(
        self, request: CompanyRequest, selection: Selection, file_format: str
    ) -> HttpResponse:
        rows = selection.queryset.order_by().count()
        assert request.user.is_authenticated  # CompanyViewMixin lets no one else in
        try:
            export = jobs.start_job(selection, file_format, request.user, rows, request=request)
        except exports.ExportError as error:
            return export_error(request, str(error))
        return redirect(export.get_absolute_url(), permanent=False)


class ExportQuerysetMixin(CompanyViewMixin):
    required_perm = Perm.EXPORT

    def get_queryset(self):
        return for_company(Export.objects.all(), self.request).select_related("requested_by")


class ExportListView(ExportQuerysetMixin, ListView):
    """The company's export files: in progress, ready to download, expired."""

    request: CompanyRequest

    template_name = "msglog/exports.html"
    context_object_name = "exports"
    paginate_by = 50

    def get_template_names(self) -> list[str]:
        if self.request.htmx:
            return ["msglog/exports.html#export-list"]
        return super().get_template_names()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["can_read_content"] = can(self.request, Perm.VIEW_CONTENT)
        context["working"] = any(not e.is_finished for e in context["exports"])
        return context


class ExportDetailView(ExportQuerysetMixin, DetailView):
    """One export's progress bar, then its download link."""

    request: CompanyRequest

    template_name = "msglog/export_detail.html"
    context_object_name = "export"
    slug_field = slug_url_kwarg = "public_id"

    def get_template_names(self) -> list[str]:
        if self.request.htmx:
            return ["msglog/export_detail.html#progress"]
        return super().get_template_names()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["can_read_content"] = can(self.request, Perm.VIEW_CONTENT)
        return context


class ExportDownloadView(ExportQuerysetMixin, View):
    """The file, for members who may export (and read content, if it holds any)."""

    request: CompanyRequest

    def get(self, request: CompanyRequest, public_id: str) -> HttpResponseBase:
        export = get_object_or_404(self.get_queryset(), public_id=public_id)
        if export.include_content and not can(request, Perm.VIEW_CONTENT):
            raise PermissionDenied(WHY_NOT[Perm.VIEW_CONTENT])
        if export.state != Export.State.READY:
            return redirect(export.get_absolute_url())
        if export.is_expired:
            return export_error(request, "This export has expired: export again.", status=410)
        path = jobs.export_path(export)
        if not path.is_file():
            raise Http404("The file is gone.")
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=export.file_name,
            content_type=exports.FORMATS[export.file_format][1],
        )
