"""The benchmarks `manage.py bench` runs (runner.py lists them), on PostgreSQL over
`seed_bulk` data; each prints figures, never asserts them."""
