"""The message log app; its ready() connects purging to the data it does not own."""

from django.apps import AppConfig


class MsglogConfig(AppConfig):
    name = "msglog"
    verbose_name = "Message log"

    def ready(self) -> None:
        # Imported here, once the app registry is ready: these modules use the models.
        # Purging reaches exports and reports through hooks because exports use purging.
        from msglog.services import inbound_reports, purging
        from msglog.services.exports import jobs

        # Provider reports are platform data keyed by address, not linked to a message.
        purging.ERASURE_HOOKS["msglog.InboundReport"] = inbound_reports.erase_addresses
        # Export files belong to the company: retention and erasure reach them too.
        purging.EXPIRY_HOOKS["msglog.Export"] = jobs.expire_company_exports
        purging.ERASURE_HOOKS["msglog.Export"] = jobs.erase_company_exports
