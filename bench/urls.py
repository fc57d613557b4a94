"""The application's URLs plus `bench/trivial/`, the yardstick view of the benchmarks."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import urlpatterns as app_urlpatterns


def trivial(request: HttpRequest) -> HttpResponse:
    """The cheapest Django answer: the same middleware, no query, no template."""
    return HttpResponse("ok")


urlpatterns = [path("bench/trivial/", trivial, name="bench-trivial"), *app_urlpatterns]
