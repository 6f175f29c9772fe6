"""fakeai's route decorator: Litestar's ``@asgi`` route handler, with its exception handlers
resolved once.

Every fakeai endpoint is a Litestar ASGI route (``litestar.handlers.ASGIRouteHandler``): Litestar
routes the request to it and formats what it raises with the application's exception handlers.
For each request Litestar's router asks the route's handler for those exception handlers
(``resolve_exception_handlers``), which Litestar 2 merges afresh every time from every layer
between the application and the route (its ``ownership_layers``): a walk up the layers and a
new dict per request, for a map that is fixed once the application is built. ``asgi`` below is
the same route handler, resolving that map on its first request and keeping it (Litestar
already keeps its guards the same way, ``resolve_guards``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.handlers import ASGIRouteHandler

if TYPE_CHECKING:
    from litestar.types import ExceptionHandlersMap

__all__ = ("asgi",)


class asgi(ASGIRouteHandler):  # noqa: N801  (a decorator, named as Litestar's)
    """``litestar.asgi``, with ``resolve_exception_handlers`` resolved once (see the module
    docstring). Use it as Litestar's: ``@asgi(path, copy_scope=False)``."""

    __slots__ = ("_exception_handlers",)

    def resolve_exception_handlers(self) -> ExceptionHandlersMap:
        try:
            return self._exception_handlers
        except AttributeError:  # the first request: the layers are all in place by now
            self._exception_handlers: ExceptionHandlersMap = super().resolve_exception_handlers()
            return self._exception_handlers
