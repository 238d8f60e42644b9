from django.urls import path

from playground import views

app_name = "playground"

urlpatterns = [
    path("", views.index, name="index"),
    path("rooms/<int:pk>/", views.room, name="room"),
    path("rooms/<int:pk>/rename/", views.rename, name="rename"),
    path("rooms/<int:pk>/delete/", views.delete, name="delete"),
    path("rooms/<int:pk>/settings/", views.configure, name="settings"),
]
