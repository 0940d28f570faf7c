"""Which rows an export holds: the view's own filters over one company's messages, read
as rows the writers can stream (formatted by the database where it can).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Case, DateTimeField, F, Func, QuerySet, TextField, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, NullIf
from django.http import QueryDict
from django.utils import timezone

from companies.models import Company, Contact
from msglog.models import Batch, Message
from msglog.queries.failures import FailedFilterForm
from msglog.queries.filters import DEFAULT_PERIOD, MessageFilter
from msglog.rules.cells import FIRST_CHARACTERS, SQL_FORMULA, SQL_PLAIN_NUMBER
from msglog.services.exports import CHUNK_ROWS, ExportError
from msglog.services.exports.columns import (
    CONTENT_FIELDS,
    FIELDS,
    LABELS,
    STAGES,
    build_rows,
    excel_time,
    text_time,
)

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler


@dataclass
class Selection:
    """What one export covers: a view's filters applied for one company (or every one)."""

    company: Company | None
    all_companies: bool
    source: str
    source_id: int | None
    query: QueryDict
    include_content: bool
    queryset: QuerySet[Message] = field(repr=False)
    filters: dict[str, Any] = field(default_factory=dict)
    frozen_query: str = ""  # the query with relative periods turned into dates


SOURCES = ("logs", "failed", "contact", "batch")


def select(
    *,
    company: Company | None,
    all_companies: bool,
    source: str,
    source_id: str | int | None,
    query: QueryDict | str,
    include_content: bool,
    today: date | None = None,
) -> Selection:
    """The messages a view shows for `query`, or ExportError saying why there are none."""
    if source not in SOURCES:
        raise ExportError("Exports are made from the Logs, Failed, contact and batch pages.")
    if isinstance(query, str):
        query = QueryDict(query)
    if company is None and not all_companies:
        raise ExportError("You are not a member of any company.")
    if "company" in query and not all_companies:
        raise ExportError("You can only export your own company's messages.")
    today = today or timezone.now().date()
    messages = Message.objects.all()
    if company is not None:
        messages = messages.filter(company=company)
    data = query.copy()
    default_period = DEFAULT_PERIOD
    wanted_id = None
    if source in {"contact", "batch"}:
        wanted_id = _as_id(source_id)
        if wanted_id is None:
            raise ExportError(f"Which {source} to export is missing.")
        owners = (Contact if source == "contact" else Batch).objects.all()
        if company is not None:
            owners = owners.filter(company=company)
        owner = owners.filter(pk=wanted_id).first()
        if owner is None:
            raise ExportError(f"That {source} is not one of your company's.")
        messages = messages.filter(**{source: owner})
        default_period = "all"
    elif source == "failed":
        data = failed_view_query(query, today)
    filterset = MessageFilter(
        data,
        queryset=messages,
        company=company,
        all_companies=all_companies,
        today=today,
        default_period=default_period,
    )
    if not filterset.is_valid():
        problems = "; ".join(
            f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
            for name, errors in filterset.form.errors.items()
        )
        raise ExportError(f"These filters could not be used, so nothing was exported: {problems}")
    queryset = filterset.qs.order_by("-created_at", "-id")
    return Selection(
        company=company,
        all_companies=all_companies,
        source=source,
        source_id=wanted_id,
        query=query,
        include_content=include_content,
        queryset=queryset,
        filters=describe_filters(filterset),
        frozen_query=freeze_period(data, filterset).urlencode(),
    )


def _as_id(value: str | int | None) -> int | None:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def failed_view_query(query: QueryDict, today: date) -> QueryDict:
    """The Failed page's window as the Logs filters that list exactly its failures."""

    form = FailedFilterForm(query or None, today=today)
    if form.is_bound and not form.is_valid():
        problems = " ".join(str(e) for errors in form.errors.values() for e in errors)
        raise ExportError(f"These filters could not be used, so nothing was exported: {problems}")
    window = form.window()
    data = QueryDict(mutable=True)
    data.update(
        {
            "tab": "failed",
            "period": "custom",
            "date_from": window.date_from.isoformat(),
            "date_to": window.date_to.isoformat(),
        }
    )
    if window.channel:
        data["channel"] = window.channel
    for name in ("provider", "company"):  # the Failed page's links narrow by these too
        if value := query.get(name):
            data[name] = value
    return data


def describe_filters(filterset: MessageFilter) -> dict[str, Any]:
    """The filters as applied, in plain JSON (for the audit log and the Exports page)."""
    described: dict[str, Any] = {}
    start, end = filterset.date_bounds()
    for name, value in filterset.form.cleaned_data.items():
        if value in (None, "", [], ()) or name in {"date_from", "date_to"}:
            continue
        if hasattr(value, "pk"):
            value = {"id": value.pk, "name": str(value)}
        elif isinstance(value, list | tuple):
            value = [str(v) for v in value]
        elif not isinstance(value, bool | int):
            value = str(value)
        described[name] = value
    described["from"] = start.isoformat() if start else None
    described["to"] = end.isoformat() if end else None
    return described


def freeze_period(data: QueryDict, filterset: MessageFilter) -> QueryDict:
    """The query with "Last 7 days" turned into its dates: a job that runs later, or past
    midnight, exports the days the person saw."""
    frozen = data.copy()
    start, end = filterset.date_bounds()
    if start and end:
        frozen["period"] = "custom"
        frozen["date_from"], frozen["date_to"] = start.isoformat(), end.isoformat()
    for name in ("cursor", "page", "cols", "sort", "per_page"):
        frozen.pop(name, None)
    return frozen


KEYS = 3  # every row ends with its channel, status and type codes, for the totals


KEY_FIELDS = ("channel", "status", "message_type")


def rows(selection: Selection, *, as_text: bool) -> Iterator[Sequence]:
    """The selected messages as finished rows (+ KEYS), read with a server-side cursor.

    On PostgreSQL the database does the per-row work (labels, neutralizing, time zones):
    the same rules as :func:`build_rows`, written as SQL by :func:`database_columns`.
    """
    if connection.vendor == "postgresql":
        queryset, names = database_columns(selection, as_text=as_text)
        return queryset.values_list(*names, *KEY_FIELDS).iterator(chunk_size=CHUNK_ROWS)
    fields = FIELDS + CONTENT_FIELDS if selection.include_content else FIELDS
    records = selection.queryset.values_list(*fields).iterator(chunk_size=CHUNK_ROWS)
    return build_rows(records, selection.include_content, text_time if as_text else excel_time)


class Neutralized(Func):
    """:func:`neutralize` in SQL."""

    output_field = TextField()

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, list[str | int]]:
        sql, params = compiler.compile(self.source_expressions[0])
        # The first character alone rules out nearly every value: the regular
        # expressions run only for the few that start with a trigger or a space.
        firsts = ", ".join(["%s"] * len(FIRST_CHARACTERS))
        quote = "''''"  # a quote, as an SQL string
        return (
            f"CASE WHEN left({sql}, 1) IN ({firsts}) AND {sql} ~ %s AND {sql} !~ %s "
            f"THEN {quote} || {sql} ELSE {sql} END",
            [
                *params,
                *FIRST_CHARACTERS,
                *params,
                SQL_FORMULA,
                *params,
                SQL_PLAIN_NUMBER,
                *params,
                *params,
            ],
        )


class AtTimeZone(Func):
    """A moment as wall-clock time in a zone (a naive timestamp)."""

    template = "(%(expressions)s)"
    arg_joiner = " AT TIME ZONE "
    output_field = DateTimeField()


class TimeText(Func):
    template = "to_char(%(expressions)s, 'YYYY-MM-DD HH24:MI:SS')"
    output_field = TextField()


def labelled(name: str, default: Combinable) -> Case:
    return Case(
        *(When(**{name: key}, then=Value(label)) for key, label in LABELS[name].items()),
        default=default,
        output_field=TextField(),
    )


def database_columns(selection: Selection, *, as_text: bool) -> tuple[QuerySet, list[str]]:
    """The selection's queryset annotated with the columns the database builds; their names."""
    text: TextField[str, str] = TextField()
    zone_name = Coalesce(NullIf(F("company__timezone"), Value("")), Value("UTC"), output_field=text)
    expressions = [
        F("public_id"),
        Neutralized(F("company__name")),
        labelled("channel", Value("")),
        labelled("category", Value("")),
        labelled("message_type", Value("")),
        Neutralized(F("to_name")),
        Neutralized(F("to_address")),
        labelled("status", F("status")),
        Neutralized(F("status_reason")),
        Neutralized(F("error_code")),
        labelled("provider", Neutralized(F("provider"))),
        Coalesce(Neutralized(F("template__name")), Value(""), output_field=text),
        F("template_version__number"),
        Coalesce(Neutralized(F("batch__name")), Value(""), output_field=text),
        zone_name,
    ]
    for stage, _ in STAGES:
        local, utc = AtTimeZone(F(stage), zone_name), AtTimeZone(F(stage), Value("UTC"))
        expressions += [TimeText(local), TimeText(utc)] if as_text else [local, utc]
    expressions += [F("segments"), F("credits")]
    if selection.include_content:
        expressions += [Neutralized(F("subject")), Neutralized(F("body_text"))]
    names = [f"export_{i}" for i in range(len(expressions))]
    return selection.queryset.annotate(**dict(zip(names, expressions, strict=True))), names
