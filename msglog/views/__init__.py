"""Views of the message log, one module per page: thin, company-filtered, role-checked."""
