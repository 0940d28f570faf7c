"""/settings/audit/: what people did in the company, filterable and exportable as CSV."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.utils import timezone
from django_filters.views import FilterView
from django_scopes import scopes_disabled
from django_tables2 import SingleTableMixin

from companies import audit
from companies.audit_log import AuditFilter, csv_lines
from companies.models import AuditEntry
from companies.tenancy import CompanyRequest
from companies.views.settings import CurrentCompanyMixin
from companies.views.tables import AuditTable


class AuditLogView(CurrentCompanyMixin, SingleTableMixin, FilterView):
    request: CompanyRequest
    model = AuditEntry
    filterset_class = AuditFilter
    table_class = AuditTable
    template_name = "companies/audit_log.html"
    table_pagination = {"per_page": 50}
    strict = True

    def get_filterset_kwargs(self, filterset_class):
        kwargs = super().get_filterset_kwargs(filterset_class)
        kwargs["company"] = self.request.company
        return kwargs

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        if request.GET.get("format") != "csv":
            return super().get(request, *args, **kwargs)
        filterset = self.get_filterset(self.get_filterset_class())
        entries = filterset.qs if filterset.is_valid() else AuditEntry.objects.none()
        # Exporting the audit log is itself something to account for.
        export = audit.record(
            audit.Action.EXPORT,
            "Exported the audit log as CSV",
            request=request,
            details={"filters": {k: v for k, v in request.GET.lists() if k != "format"}},
        )
        entries = entries.filter(pk__lt=export.pk)  # the rows as they were when asked for
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response = StreamingHttpResponse(
            rows_outside_the_request(entries), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
        return response


def rows_outside_the_request(entries):
    """The response streams after the middleware's scope has closed; the queryset is
    already filtered to the company explicitly (AuditFilter), so it reads unscoped."""
    with scopes_disabled():
        yield from csv_lines(entries.iterator(chunk_size=2000))
