"""The small vocabularies a message is described by."""

from django.db import models


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class Category(models.TextChoices):
    TRANSACTIONAL = "transactional", "Transactional"
    NOTIFICATION = "notification", "Notification"
    SERVICE = "service", "Service"
    MARKETING = "marketing", "Marketing"


class MessageType(models.TextChoices):
    CONFIRMATION = "confirmation", "Confirmation"
    REMINDER = "reminder", "Reminder"
    THANK_YOU = "thank_you", "Thank You"
    CONFIRMATION_REQUEST = "confirmation_request", "Confirmation Request"
    CANCELLATION = "cancellation", "Cancellation"
    RESCHEDULE = "reschedule", "Reschedule"
    INVOICE = "invoice", "Invoice"
    PAYMENT_RECEIPT = "payment_receipt", "Payment Receipt"
    PACKAGE_PURCHASE = "package_purchase", "Package Purchase"
    BIRTHDAY = "birthday", "Birthday"
    MARKETING = "marketing", "Marketing"
    WAITLIST = "waitlist", "Waitlist"
    CUSTOM = "custom", "Custom"
    SYSTEM = "system", "System"


class Provider(models.TextChoices):
    SIMULATOR = "simulator", "Simulator"
    TWILIO = "twilio", "Twilio"
    SMTP = "smtp", "SMTP"
    ANYMAIL = "anymail", "Email service (anymail)"
