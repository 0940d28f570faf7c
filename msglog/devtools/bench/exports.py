"""Export benchmarks: CSV and Excel of a whole company's log, in a subprocess.

Each export runs in a fresh Python process, exactly as a background job does (the
filters rebuilt from a query string, rows read with a server-side cursor), so its peak
memory (`ru_maxrss` of that process) is the export's and nothing else's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from msglog.devtools.bench.common import (
    BENCH_USER,
    allow_test_client,
    biggest_company,
    company_messages,
    signed_in,
    timed,
)

ROOT = Path(__file__).resolve().parents[3]

# Run in the child: export every message of one company, report timings and peak memory.
CHILD = """
import json, os, resource, sys, tempfile, time
import django
django.setup()
from django_scopes import scope
from companies.models import Company
from msglog import exports

file_format, company_id, query = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start, cpu_start = time.perf_counter(), time.process_time()
company = Company.objects.get(pk=company_id)
figures = {}
with scope(company=company.pk):
    selection = exports.select(
        company=company, all_companies=False, source="logs", source_id=None,
        query=query, include_content=False,
    )
    with open(os.devnull, "wb") as sink:
        if file_format == "csv":
            rows = 0
            for chunk in exports.csv_chunks(selection, on_progress=lambda n: None):
                if "first_byte_ms" not in figures:
                    figures["first_byte_ms"] = (time.perf_counter() - start) * 1000
                elif "first_rows_ms" not in figures:
                    figures["first_rows_ms"] = (time.perf_counter() - start) * 1000
                sink.write(chunk)
                rows += chunk.count(b"\\n")
            rows -= 1
        else:
            with tempfile.TemporaryFile() as spool:  # a zip file needs a real file
                rows = exports.write_xlsx(selection, spool)
                figures["file_mb"] = spool.tell() / 1024 / 1024
seconds = time.perf_counter() - start
figures["cpu_us_per_row"] = (time.process_time() - cpu_start) / max(rows, 1) * 1e6
figures.update(
    rows=rows,
    seconds=seconds,
    peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
)
print(json.dumps(figures))
"""


def run_child(file_format: str, company_id: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, file_format, str(company_id), "period=all"],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"the {file_format} export failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict:
    rates = [r["rows"] / r["seconds"] for r in runs]
    figures = {
        "rows": runs[0]["rows"],
        "runs": len(runs),
        "rows_per_s_median": round(statistics.median(rates)),
        "seconds_median": round(statistics.median(r["seconds"] for r in runs), 1),
        "peak_rss_mb_max": round(max(r["peak_rss_mb"] for r in runs), 1),
        # The process's own CPU per row: steadier than wall time on a shared machine.
        "cpu_us_per_row_median": round(statistics.median(r["cpu_us_per_row"] for r in runs), 1),
    }
    for key in ("first_byte_ms", "first_rows_ms", "file_mb"):
        if key in runs[0]:
            figures[f"{key}_median"] = round(statistics.median(r[key] for r in runs), 1)
    return figures


def view_first_byte(company, runs: int = 5) -> dict:
    """The Export menu's CSV button as a browser meets it: POST to the first bytes of the
    file (filters, the row count that decides inline or background, the audit entry)."""

    allow_test_client()
    client = signed_in(BENCH_USER, company)
    form = {"format": "csv", "source": "logs", "query": "period=today"}

    def first_chunk():
        response = client.post("/exports/new/", form)
        assert response.status_code == 200 and response.streaming, response.status_code
        next(iter(response.streaming_content))
        response.close()

    return {"query": form["query"], **timed(first_chunk, runs, warmup=1)}


def bench_exports(csv_runs: int = 3, xlsx_runs: int = 3) -> dict:
    """CSV and Excel of the biggest company's whole log."""

    company = biggest_company()
    csv_figures = summarize([run_child("csv", company.pk) for _ in range(csv_runs)])
    xlsx_figures = summarize([run_child("xlsx", company.pk) for _ in range(xlsx_runs)])
    return {
        "company_messages": company_messages(company),
        "csv": csv_figures,
        "csv_view_first_byte": view_first_byte(company),
        "xlsx": xlsx_figures,
        "targets": {
            "csv": "≥ 50,000 rows/s, first byte ≤ 1 s, peak ≤ 150 MB",
            "xlsx": "≥ 10,000 rows/s, peak ≤ 200 MB",
        },
    }
