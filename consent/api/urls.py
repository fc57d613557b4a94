from django.urls import path
from rest_framework.routers import SimpleRouter

from consent.api.views import (
    ConsentViewSet,
    FormSubmissionView,
    PurposeViewSet,
)

router = SimpleRouter()
router.register("purposes", PurposeViewSet, basename="purpose")
router.register("consents", ConsentViewSet, basename="consent")

urlpatterns = [
    path("forms/submissions/", FormSubmissionView.as_view(), name="form-submission"),
    *router.urls,
]
