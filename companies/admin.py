from django.contrib import admin

from companies.models import Company, Contact, CreditLedgerEntry, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "sms_enabled",
        "email_enabled",
        "sms_credit_balance",
        "retention_days",
        "contracted",
    )
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]
    readonly_fields = ("sms_credit_balance",)


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "phone", "company", "email_bounced", "sms_opted_out")
    search_fields = ("name", "email", "phone")
    list_filter = ("email_bounced", "sms_opted_out")


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "company", "kind", "amount", "balance_after")
    list_filter = ("kind",)
    raw_id_fields = ("message", "created_by")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the ledger is append-only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
