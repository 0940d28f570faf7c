"""Message Service > Logs: tabs, filters, stats cards, histogram and the message table.

The whole state of the view (tab, filters, sort, cursor or page, visible columns) is in
the URL, so a copied link opens the same view for a colleague of the same company.
"""

from __future__ import annotations

from datetime import date
from html import escape

from django.core.paginator import EmptyPage, PageNotAnInteger
from django.db.models import QuerySet
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.views import View
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin
from django_tables2.paginators import LazyPaginator

from companies.tenancy import CompanyRequest, for_company
from companies.views.base import CompanyViewMixin
from msglog.models import ColumnPreference, Message
from msglog.queries import stats
from msglog.queries.filters import DEFAULT_PERIOD, TABS, MessageFilter
from msglog.queries.pagination import COUNT_CAP, KeysetPaginator, capped_count
from msglog.services import retention
from msglog.web.tables import ALWAYS_SHOWN, OPTIONAL_COLUMNS, MessageTable, hidden_columns

TABLE_KEY = "messages"
# The message fields the table's cells read (tables.CELLS).
TABLE_FIELDS = (
    "id",
    "public_id",
    "company_id",
    "channel",
    "to_address",
    "to_name",
    "category",
    "message_type",
    "template_id",
    "credits",
    "batch_id",
    "status",
    "created_at",
)
PER_PAGE = 50


def saved_columns(user, table: str = TABLE_KEY) -> list[str] | None:
    choice = ColumnPreference.objects.filter(user=user, table=table).first()
    return choice.columns if choice else None


class LogsView(CompanyViewMixin, SingleTableMixin, FilterView):
    """The company's messages, newest first, with everything a support person filters by."""

    request: CompanyRequest
    object_list: QuerySet[Message]  # set by FilterView.get: the filtered messages
    model = Message
    table_class = MessageTable
    filterset_class = MessageFilter
    template_name = "msglog/logs.html"
    # Invalid filters give an empty table and the form's errors, never an exception.
    strict = True
    default_period = DEFAULT_PERIOD
    # Cards and histogram describe the company's traffic; narrower pages leave them out.
    show_stats = True

    def get_template_names(self) -> list[str]:
        if self.request.htmx and self.request.htmx.target == "live":
            return ["msglog/logs.html#live"]  # a refresh: only the part that changes
        return super().get_template_names()

    def base_queryset(self) -> QuerySet:
        """The messages this page lists before filters; pages built on this one narrow it."""
        return for_company(Message.objects.all(), self.request)

    def get_queryset(self) -> QuerySet:
        # Only what the table shows: a page of 50 rows otherwise builds 200 model objects
        # and parses 400 timestamps nobody sees.
        hidden = hidden_columns(self.visible_columns)
        related = ["template"]
        if self.request.all_companies and "company" not in hidden:
            related.append("company")
        if "batch" not in hidden:
            related.append("batch")
        return (
            self.base_queryset()
            .select_related(*related)
            .only(*TABLE_FIELDS, *(f"{name}__name" for name in related))
        )

    def get_filterset_kwargs(self, filterset_class):
        kwargs = super().get_filterset_kwargs(filterset_class)
        kwargs["company"] = self.request.company
        kwargs["all_companies"] = self.request.all_companies
        kwargs["today"] = timezone.now().date()
        kwargs["default_period"] = self.default_period
        if self.request.company is not None:
            kwargs["earliest_day"] = retention.earliest_day(self.request.company, kwargs["today"])
            kwargs["earliest_reason"] = retention.why_not_before(
                self.request.company, kwargs["today"]
            )
        return kwargs

    # --- Columns -------------------------------------------------------------------------

    @cached_property
    def visible_columns(self) -> list[str] | None:
        """The columns in the URL (a shared link), else the user's saved choice."""
        if "cols" in self.request.GET:
            return [c for c in self.request.GET.getlist("cols") if c in OPTIONAL_COLUMNS]
        return saved_columns(self.request.user)

    def get_table_kwargs(self):
        return {
            "hidden": hidden_columns(self.visible_columns),
            "show_company": self.request.all_companies,
        }

    # --- Sorting and paging ----------------------------------------------------------------

    def get_table(self, **kwargs):
        table = self.get_table_class()(data=self.get_table_data(), **kwargs)
        sort = self.request.GET.get("sort", "")
        if sort.removeprefix("-") in {c.name for c in table.columns if c.orderable}:
            table.order_by = sort  # anything else keeps the default, newest first
        order = [str(o) for o in (table.order_by or ())] or ["-created_at"]
        per_page = self.per_page()
        if order[0] in {"created_at", "-created_at"}:
            # Date order, the default: seek pagination, as fast on page 200 as on page 1.
            table.paginate(
                paginator_class=KeysetPaginator,
                per_page=per_page,
                page=self.request.GET.get("cursor", ""),
                descending=order[0].startswith("-"),
            )
        else:
            try:
                table.paginate(
                    paginator_class=LazyPaginator,
                    per_page=per_page,
                    page=self.request.GET.get("page", 1),
                )
            except (PageNotAnInteger, EmptyPage):
                table.paginate(paginator_class=LazyPaginator, per_page=per_page, page=1)
        return table

    def per_page(self) -> int:
        try:
            return min(max(int(self.request.GET.get("per_page", PER_PAGE)), 10), 200)
        except ValueError:
            return PER_PAGE

    # --- Page context ----------------------------------------------------------------------

    def get_context_data(self, **kwargs):
        self.object_list = self.searched_once(self.filterset, self.object_list)
        context = super().get_context_data(**kwargs)
        filterset: MessageFilter = context["filter"]
        cards, days, series = (
            self.stats(filterset, self.object_list) if self.show_stats else (None, [], {})
        )
        if cards is not None and filterset.is_valid() and filterset.rollups_can_answer():
            count, more = cards.total, False  # the rollups counted exactly these messages
        elif self.search_ids is not None:
            count, more = len(self.search_ids), False
        else:
            count, more = capped_count(self.object_list)
        visible = set(OPTIONAL_COLUMNS) - hidden_columns(self.visible_columns)
        context.update(
            tabs=self.tabs(filterset.current_tab),
            match_count=count,
            match_more=more,
            cards=cards,
            histogram={
                "days": [d.isoformat() for d in days],
                "series": series,
                "stacks": [(k, label) for k, label, _ in stats.HISTOGRAM_STACKS],
            },
            histogram_table=daily_table_html(days, series),
            column_choices=[
                (name, label, name in visible)
                for name, label in OPTIONAL_COLUMNS.items()
                if name != "company" or self.request.all_companies
            ],
            always_shown=ALWAYS_SHOWN,
            cards_from_rollups=filterset.rollups_can_answer(),
            show_stats=self.show_stats,
            query_without=lambda *names: self.query_without(*names),
        )
        return context

    def query_without(self, *names: str) -> str:
        query: QueryDict = self.request.GET.copy()
        for name in names:
            query.pop(name, None)
        return query.urlencode()

    def tabs(self, current: str) -> list[tuple[str, str, str, bool]]:
        base = self.request.GET.copy()
        for name in ("tab", "cursor", "page"):
            base.pop(name, None)
        tabs = []
        for key, (label, _) in TABS.items():
            query = base.copy()
            query["tab"] = key
            tabs.append((key, label, query.urlencode(), key == current))
        return tabs

    def searched_once(self, filterset: MessageFilter, matches: QuerySet) -> QuerySet:
        """A search reads the trigram index once, not once each for rows, count and figures.

        When at most a capped count of messages match, their ids stand in for the search;
        more matches keep the search itself (the rows then come from the newest end).
        """
        self.search_ids: list[int] | None = None
        if not filterset.is_valid() or not filterset.form.cleaned_data.get("q"):
            return matches
        ids = list(matches.order_by().values_list("pk", flat=True)[: COUNT_CAP + 1])
        if len(ids) > COUNT_CAP:
            return matches
        self.search_ids = ids
        return self.get_queryset().filter(pk__in=ids)

    def stats(self, filterset: MessageFilter, matches: QuerySet):
        return stats.log_figures(
            filterset,
            matches,
            company=self.request.company,
            all_companies=self.request.all_companies,
            today=timezone.now().date(),
        )


class ColumnChoiceView(CompanyViewMixin, View):
    """Save which columns a user wants to see, then go back to the view they came from."""

    request: CompanyRequest

    def post(self, request: CompanyRequest) -> HttpResponse:
        columns = [c for c in request.POST.getlist("cols") if c in OPTIONAL_COLUMNS]
        ColumnPreference.objects.update_or_create(
            user=request.user, table=TABLE_KEY, defaults={"columns": columns}
        )
        next_url = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
            next_url = "/logs/"
        path, _, query = next_url.partition("?")
        params = QueryDict(query, mutable=True)
        params.setlist("cols", columns)
        return redirect(f"{path}?{params.urlencode()}")


def daily_table_html(days: list[date], series: dict[str, list[int]]) -> SafeString:
    """The histogram as a table (what a reader without JavaScript gets), rendered in one
    pass of plain strings: a few months of days times every stack is thousands of cells,
    and every cell is an integer."""
    head = "".join(f"<th>{escape(str(label))}</th>" for _, label, _ in stats.HISTOGRAM_STACKS)
    columns = [series.get(key, ()) for key, _, _ in stats.HISTOGRAM_STACKS]
    body = "".join(
        f"<tr><td>{day:%b} {day.day}</td>"
        + "".join(f'<td class="num">{int(column[i])}</td>' for column in columns)
        + "</tr>"
        for i, day in enumerate(days)
    )
    return mark_safe(  # noqa: S308 — labels are escaped, every other cell is an int
        f'<table class="table compact"><thead><tr><th>Day</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
