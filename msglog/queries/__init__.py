"""Reading the log: filters and their widgets, search, keyset paging, stats from the
rollups, the Failed page's figures, batch figures and the suppression list. Read-only;
imported by pages, exports and the API."""
