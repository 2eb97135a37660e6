from django.urls import path

from prompts import views

app_name = "prompts"
base = "t/<slug:slug>/prompts/"

urlpatterns = [
    path(base, views.feature_list, name="feature_list"),
    path(base + "<slug:feature_slug>/", views.feature_detail, name="feature_detail"),
    path(base + "<slug:feature_slug>/versions/new/", views.version_new, name="version_new"),
    path(
        base + "<slug:feature_slug>/versions/<int:version_id>/",
        views.version_edit,
        name="version_edit",
    ),
    path(
        base + "<slug:feature_slug>/versions/<int:version_id>/preview/",
        views.preview,
        name="preview",
    ),
    path(
        base + "<slug:feature_slug>/versions/<int:version_id>/test/",
        views.test_run,
        name="test_run",
    ),
    path(
        base + "<slug:feature_slug>/versions/<int:version_id>/publish/",
        views.publish,
        name="publish",
    ),
    path(
        base + "<slug:feature_slug>/versions/<int:version_id>/evaluate/",
        views.evaluate,
        name="evaluate",
    ),
    path(base + "<slug:feature_slug>/evaluation/", views.eval_dataset, name="eval_dataset"),
    path(
        base + "<slug:feature_slug>/evaluation/<int:case_id>/remove/",
        views.eval_case_remove,
        name="eval_case_remove",
    ),
    path(base + "<slug:feature_slug>/rollback/", views.rollback, name="rollback"),
    path(base + "<slug:feature_slug>/split/", views.set_split, name="split"),
    path(base + "<slug:feature_slug>/cache/", views.cache_policy, name="cache_policy"),
    path(base + "<slug:feature_slug>/run-mode/", views.run_mode, name="run_mode"),
    path(base + "<slug:feature_slug>/diff/", views.diff, name="diff"),
]
