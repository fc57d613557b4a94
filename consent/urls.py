from django.urls import path

from consent import views

app_name = "consent"

urlpatterns = [
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("confirm/signup/<str:token>/", views.confirm_signup, name="confirm_signup"),
]
