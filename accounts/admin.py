from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import OutsideIdentity
from accounts.throttle import SignInThrottled
from billing.admin import QuotaInline
from billing.models import Quota
from billing.quotas import quota_save

User = get_user_model()
admin.site.unregister(User)


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, saying so when sign-ins are throttled (accounts.throttle)."""

    def clean(self):
        try:
            return super().clean()
        except SignInThrottled as exc:
            raise ValidationError(str(exc.detail), code="throttled") from exc


admin.site.login_form = ThrottledAdminAuthenticationForm
admin.site.site_header = "LLM Gateway"
admin.site.site_title = "LLM Gateway admin"
admin.site.index_title = "Administration"
# The landing page (templates/home.html): "View site" leads there.
admin.site.site_url = "/"
# Sign-in's bookkeeping, one row per refresh token: revocation is "log out" (POST /api/auth/logout/)
# or a password change, never an edit here.
admin.site.unregister(OutstandingToken)
admin.site.unregister(BlacklistedToken)


@admin.register(User)
class GatewayUserAdmin(UserAdmin):
    """Django's user admin, with the user's quota on the same page."""

    inlines = [QuotaInline]

    def save_formset(self, request, form, formset, change):
        if formset.model is not Quota:
            return super().save_formset(request, form, formset, change)
        # The quota goes through billing's rules for an edit (a changed period restarts it).
        for quota in formset.save(commit=False):
            changed: list[str] = next((fields for obj, fields in formset.changed_objects if obj is quota), [])
            quota_save(quota=quota, changed=changed)


@admin.register(OutsideIdentity)
class OutsideIdentityAdmin(admin.ModelAdmin):
    """Who signs in through the identity provider, as which account; staff may relink one."""

    list_display = ["subject", "issuer", "user", "created_at"]
    search_fields = ["subject", "user__username"]
    raw_id_fields = ["user"]
