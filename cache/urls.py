from django.urls import path

from cache import views

app_name = "cache"
base = "t/<slug:slug>/cache/"

urlpatterns = [
    path(base, views.overview, name="overview"),
    path(base + "<slug:feature_slug>/purge/", views.purge, name="purge"),
]
