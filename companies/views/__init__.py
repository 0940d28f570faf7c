"""Company administration pages: settings, members, credits, the audit log, the company switcher."""
