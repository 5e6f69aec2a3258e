"""The admin site, filled with every app's ModelAdmins the first time anything reads it.

Django's default ``AdminConfig`` imports every installed app's ``admin`` module inside
``django.setup()``; those modules pull in forms, services and third-party admin code (django-q2's
admin loads psutil and prometheus; simplejwt's loads ``django.test``), about a fifth of every
command's start-up, for commands that never show a page. Here the same discovery runs on the
first read of the site's registry instead: the URLconf (``admin.site.urls``), the admin system
checks (``manage.py check``, every command that runs checks), ``admin.site.is_registered`` and
anything else that looks at ``admin.site._registry``. What is registered, and in what order, is
what Django's own autodiscovery registers.
"""

from __future__ import annotations

import threading

from django.contrib.admin.apps import SimpleAdminConfig
from django.contrib.admin.sites import AdminSite
from django.utils.module_loading import autodiscover_modules


class LazyAdminSite(AdminSite):
    """An ``AdminSite`` that imports the apps' ``admin`` modules on the first registry read."""

    def __init__(self, name: str = "admin") -> None:
        self._discovered = False
        self._discovery_lock = threading.RLock()
        super().__init__(name)

    @property
    def _registry(self) -> dict:
        """Return the model -> ModelAdmin map, discovering the apps' admin modules first."""
        if not self._discovered:
            with self._discovery_lock:
                if not self._discovered:
                    # Set first: the admin modules register (and so read the registry) while
                    # they are imported.
                    self._discovered = True
                    try:
                        autodiscover_modules("admin", register_to=self)
                    except BaseException:
                        self._discovered = False  # as Django does: the next read tries again
                        raise
        return self.__dict__["_model_admins"]

    @_registry.setter
    def _registry(self, value: dict) -> None:
        self.__dict__["_model_admins"] = value


class LazyAdminConfig(SimpleAdminConfig):
    """``django.contrib.admin`` with :class:`LazyAdminSite` and no discovery at set-up."""

    default_site = "rrr_site.admin_site.LazyAdminSite"
