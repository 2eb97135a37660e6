from django.contrib.auth import views as auth_views
from django.urls import path

from tenants import operator, views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="tenants/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tenants/", views.tenant_list, name="tenant_list"),
    path("tenants/provision/", views.tenant_provision, name="tenant_provision"),
    path("plans/", views.plan_list, name="plan_list"),
    path("operator/", operator.operator, name="operator"),
    path("plans/new/", views.plan_edit, name="plan_new"),
    path("plans/<int:plan_id>/", views.plan_edit, name="plan_edit"),
    path("t/<slug:slug>/", views.tenant_detail, name="tenant_detail"),
    path("t/<slug:slug>/settings/", views.tenant_settings, name="tenant_settings"),
    path("t/<slug:slug>/keys/", views.api_keys, name="api_keys"),
    path("t/<slug:slug>/keys/<int:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("t/<slug:slug>/members/", views.members, name="members"),
]
