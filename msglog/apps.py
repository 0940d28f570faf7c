from django.apps import AppConfig


class MsglogConfig(AppConfig):
    name = "msglog"
    verbose_name = "Message log"

    def ready(self) -> None:
        from . import exports, purging
        from .webhooks import reports

        # Provider reports are platform data keyed by address, not linked to a message.
        purging.ERASURE_HOOKS["msglog.InboundReport"] = reports.erase_addresses
        # Export files belong to the company: retention and erasure reach them too.
        purging.EXPIRY_HOOKS["msglog.Export"] = exports.expire_company_exports
        purging.ERASURE_HOOKS["msglog.Export"] = exports.erase_company_exports
