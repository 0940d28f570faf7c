"""The providers, one folder each with both directions: its client (handing messages
over, looking them up) and, where it has them, its webhooks (status reports coming
back), as healthchecks keeps hc/integrations/<kind>/.

Every client implements msglog.rules.provider_interface.Provider and is registered by
dotted path in the MESSAGE_PROVIDERS setting; msglog.services.provider_registry finds
it by name. Webhook views authenticate a report, turn it into an
msglog.services.inbound_reports.Incoming and store it; workers apply it.
"""
