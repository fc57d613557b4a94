from django.urls import path, register_converter

from preferences import views

app_name = "preferences"


class SignupTokenConverter:
    """`s-<token>`: a signup link lives under the same `/confirm/<secret>/` shape as the double
    opt-in link (so whatever keeps those secrets out of logs covers it too), told apart by a
    prefix no signed token starts with (they start with `.` or `ey`)."""

    regex = r"s-[^/]+"

    def to_python(self, value: str) -> str:
        return value[2:]

    def to_url(self, value: str) -> str:
        return f"s-{value}"


register_converter(SignupTokenConverter, "signup_token")


class RepermissionTokenConverter(SignupTokenConverter):
    """`r-<token>`: a re-permission request's confirm link (`campaigns.repermission`), under
    the same `/confirm/<secret>/` shape, told apart by its prefix."""

    regex = r"r-[^/]+"

    def to_url(self, value: str) -> str:
        return f"r-{value}"


register_converter(RepermissionTokenConverter, "repermission_token")

urlpatterns = [
    path("confirm/<signup_token:token>/", views.confirm_signup, name="confirm_signup"),
    path(
        "confirm/<repermission_token:token>/",
        views.confirm_repermission,
        name="confirm_repermission",
    ),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("p/confirm/<str:token>/", views.action, name="action"),
    path("p/<str:token>/receipts/", views.receipts, name="receipts"),
    path("p/<str:token>/", views.center, name="center"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
