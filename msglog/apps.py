from django.apps import AppConfig


class MsglogConfig(AppConfig):
    name = "msglog"
    verbose_name = "Message log"

    def ready(self) -> None:
        from . import purging
        from .webhooks import reports

        # Provider reports are platform data keyed by address, not linked to a message.
        purging.ERASURE_HOOKS["msglog.InboundReport"] = reports.erase_addresses
