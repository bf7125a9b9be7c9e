"""The report's allocator-replay section, from the tiny run's alloc_trace.csv.gz."""
import csv

from analysis.report import write_report


def test_report_shows_predicted_reserved_per_token_for_dynamic_points(run_copy):
    assert (run_copy / "alloc_trace.csv.gz").exists()
    text = write_report(run_copy).read_text()
    assert "## KV memory as CUDA's caching allocator reserves it (trace replay)" in text
    rows = list(csv.DictReader(open(run_copy / "kv_allocator.csv")))
    assert rows and all(int(r["reserved_bytes"]) >= int(r["allocated_bytes"]) >= int(r["requested_bytes"]) for r in rows)
    assert write_report(run_copy).read_text() == text                # the same bytes on rerun
