from rest_framework.routers import SimpleRouter

from contacts.api.deliverability import DeliverabilityEventViewSet
from contacts.api.imports import ImportViewSet
from contacts.api.views import ContactViewSet

router = SimpleRouter()
router.register("contacts", ContactViewSet, basename="contact")
router.register("imports", ImportViewSet, basename="import")
router.register(
    "deliverability-events", DeliverabilityEventViewSet, basename="deliverability-event"
)

urlpatterns = router.urls
