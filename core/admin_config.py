"""`django.contrib.admin` with our site (two-factor authentication) as `admin.site`."""

from django.contrib.admin.apps import AdminConfig


class ConsentDeskAdminConfig(AdminConfig):
    default_site = "core.admin_site.ConsentDeskAdminSite"
