"""Every write, one module per use case: sending, delivery, events and inbound reports,
batches and uploads, batch counters, suppressions, rate limits, rollups, retention,
purging, erasure, tracking and exports. Services publish work for the workers by task
name after commit (queue.py) and never import the workers."""
