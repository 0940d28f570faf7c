from django.contrib import admin

from msglog.models import Batch, InboundReport, Message, StatusEvent, Suppression


class StatusEventInline(admin.TabularInline):
    model = StatusEvent
    extra = 0
    fields = ("occurred_at", "status", "event", "source", "error_code", "error_message")
    readonly_fields = fields
    can_delete = False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "company",
        "channel",
        "to_address",
        "message_type",
        "status",
        "credits",
    )
    list_filter = ("company", "channel", "status", "category", "message_type", "created_at")
    search_fields = ("to_address", "to_name", "subject")
    raw_id_fields = ("contact", "template", "template_version", "batch", "created_by")
    readonly_fields = ("public_id",)
    date_hierarchy = "created_at"
    inlines = [StatusEventInline]
    list_select_related = ("company",)


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("name", "company", "channel", "state", "progress", "created_at")
    list_filter = ("state", "channel")
    raw_id_fields = ("template", "template_version", "restarted_from", "created_by", "stopped_by")


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("address", "channel", "reason", "company", "created_at")
    list_filter = ("channel", "reason")
    search_fields = ("address",)
    raw_id_fields = ("message",)


@admin.register(InboundReport)
class InboundReportAdmin(admin.ModelAdmin):
    """Provider reports as received: operators find orphans and ignored reports here."""

    list_display = ("received_at", "source", "kind", "event", "state", "reason", "address")
    list_filter = ("state", "source", "kind")
    search_fields = ("provider_message_id", "public_id", "address")
    date_hierarchy = "received_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
