"""`/api/v1/events/`: the event feed."""

from django.urls import path

from crmsync.api.views import EventFeedView

urlpatterns = [path("events/", EventFeedView.as_view(), name="event-feed")]
