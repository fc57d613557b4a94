from django.urls import path

from preferences import views

app_name = "preferences"

urlpatterns = [
    path("p/confirm/<str:token>/", views.action, name="action"),
    path("p/<str:token>/", views.center, name="center"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
