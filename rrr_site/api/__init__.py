"""The REST API framework: roles, account scoping, routing, auth, parsing and pagination.

Each app keeps its endpoints in ``<app>/api/`` (``urls.py``, ``views.py``, ``serializers.py``);
``rrr_site.api.urls`` mounts every app's ``urlpatterns`` under ``/api/v1/`` and again under
``/api/`` (the unversioned aliases). Views declare ``permission_classes`` from
``rrr_site.api.permissions``; the default is to refuse everything.
"""
