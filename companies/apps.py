from django.apps import AppConfig


class CompaniesConfig(AppConfig):
    name = "companies"
    verbose_name = "Companies"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .audit import record_login

        # A thin hook: the audit module decides what a sign-in records.
        user_logged_in.connect(record_login, dispatch_uid="companies.audit.record_login")
