"""Reports from outside about our messages: provider webhooks, inbound SMS, and our own
open and click tracking. The views authenticate and store (reports.store); workers apply
(reports.apply_pending). See reports.py for the path a report takes, and dispatch.py for
the lean WSGI path of Twilio's status callbacks."""
