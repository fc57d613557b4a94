from django.urls import path

from consent import views

app_name = "consent"

urlpatterns = [
    path("confirm/<str:token>/", views.confirm, name="confirm"),
]
