"""The CRMs' change notifications, one URL per connection (mounted at /crm/notify/)."""

from django.urls import path

from crmsync.views import change_notification

app_name = "crmsync"

urlpatterns = [
    # HubSpot: the request is signed (X-HubSpot-Signature-v3)
    path("<int:connection_id>/", change_notification, name="notify"),
    # Salesforce: outbound messages are not signed, the URL carries the connection's token
    path("<int:connection_id>/<str:token>/", change_notification, name="notify-with-token"),
]
