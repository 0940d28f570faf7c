"""The manager of every company-owned model: django-scopes' ScopedManager(company="company").

ScopedManager is a factory: it defines its manager class inside a function, where the type
checker (and the Django plugin resolving ``objects``, ``_default_manager`` and every reverse
relation's manager) cannot see it. :class:`CompanyScopedManager` is that same class, subclassed
once under a name the type checker can import; it adds nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models
from django_scopes import ScopedManager

if TYPE_CHECKING:
    from typing import Self

    _ScopedByCompany = models.Manager
else:
    _ScopedByCompany = type(ScopedManager(company="company"))

_M = TypeVar("_M", bound=models.Model)


class CompanyScopedManager(_ScopedByCompany[_M]):
    """Queries raise ScopeError outside an active company scope (see companies.tenancy)."""

    if TYPE_CHECKING:

        def with_scope(self, **scope: Any) -> Self: ...

        def with_scopes_disabled(self) -> Self: ...
