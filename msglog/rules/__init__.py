"""The log's vocabulary and its pure rules: statuses and the status rule, kinds, error
explanations, SMS segments, dedupe keys, addresses, days, spreadsheet cells, content
sanitizing and the provider interface. Every layer imports these; they import nothing
of ours."""
