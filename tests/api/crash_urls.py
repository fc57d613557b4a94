"""The project's URLs and error handlers, plus views that fail, to see how a crash is answered."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config import urls


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


handler400 = urls.handler400
handler403 = urls.handler403
handler404 = urls.handler404
handler500 = urls.handler500

urlpatterns = [
    path("api/v1/crash/", crash),
    path("crash/", crash),
    *urls.urlpatterns,
]
