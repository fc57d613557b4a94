"""`/api/v1/privacy-requests/`: the router of the privacy-request viewset."""

from rest_framework.routers import SimpleRouter

from privacy.api.views import PrivacyRequestViewSet

router = SimpleRouter()
router.register("privacy-requests", PrivacyRequestViewSet, basename="privacy-request")

urlpatterns = router.urls
