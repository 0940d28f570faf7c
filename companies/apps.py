"""The companies app; its ready() records sign-ins in the audit log."""

from django.apps import AppConfig


class CompaniesConfig(AppConfig):
    name = "companies"
    verbose_name = "Companies"

    def ready(self) -> None:
        # Imported once the app registry is ready: the audit module uses the models.
        from django.contrib.auth.signals import user_logged_in

        from companies.audit import record_login

        # A thin hook: the audit module decides what a sign-in records.
        user_logged_in.connect(record_login, dispatch_uid="companies.audit.record_login")
