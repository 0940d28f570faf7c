from django.contrib import admin

from templates_app.models import MessageTemplate, MessageTemplateVersion


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "company", "channel", "category", "message_type", "updated_at")
    list_filter = ("channel", "category", "message_type")
    search_fields = ("name",)


@admin.register(MessageTemplateVersion)
class MessageTemplateVersionAdmin(admin.ModelAdmin):
    list_display = ("template", "number", "created_at")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # versions are immutable
