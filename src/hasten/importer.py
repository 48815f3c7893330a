"""Turn ``"module:attribute"`` into an ASGI 3 application, with errors a user can act on."""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

from hasten.asgi import ASGIApplication, Receive, Scope, Send


class AppLoadError(Exception):
    """The app could not be loaded; the message says why in one line."""


def import_from_string(import_string: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted) and return the attribute."""
    module_name, sep, attrs = import_string.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(
            f'Import string "{import_string}" must be in format "<module>:<attribute>".'
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            # The module itself (or a parent package) is missing, not one of its imports.
            raise AppLoadError(f'Could not import module "{module_name}".') from exc
        raise AppLoadError(
            f'Error importing module "{module_name}": {type(exc).__name__}: {exc}'
        ) from exc
    value: Any = module
    for attr in attrs.split("."):
        try:
            value = getattr(value, attr)
        except AttributeError as exc:
            raise AppLoadError(f'Attribute "{attrs}" not found in module "{module_name}".') from exc
    return value


class ASGI2Adapter:
    """Runs an ASGI 2 (double-callable) application as an ASGI 3 one."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def is_asgi2(app: Any) -> bool:
    """Whether ``app`` is an ASGI 2 (double-callable) application.

    An ASGI 2 app is called with the scope alone and returns the coroutine function that
    takes ``(receive, send)``: a class whose instances are that callable, or a plain function
    of one argument. A coroutine function, an instance with ``async def __call__`` or any
    callable accepting three positional arguments is ASGI 3.
    """
    if inspect.isclass(app):
        # An ASGI 3 class makes awaitable instances from (scope, receive, send).
        return not hasattr(app, "__await__")
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    if inspect.iscoroutinefunction(call):
        return False
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):  # a builtin or extension callable: assume the current spec
        return False
    positional = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.kind
        in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    takes_varargs = any(
        parameter.kind is inspect.Parameter.VAR_POSITIONAL
        for parameter in signature.parameters.values()
    )
    return len(positional) == 1 and not takes_varargs


def load_app(
    app: ASGIApplication | str, *, factory: bool = False, app_dir: str = "."
) -> ASGIApplication:
    """Resolve an app or import string to an ASGI 3 callable.

    ``factory`` calls the imported object with no arguments to obtain the app.
    ``app_dir`` is put at the front of ``sys.path`` before importing.
    """
    if isinstance(app, str):
        if app_dir is not None and app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        loaded: Any = import_from_string(app)
    else:
        loaded = app
    if factory:
        if not callable(loaded):
            raise AppLoadError(f"The app factory {app!r} is not callable.")
        try:
            loaded = loaded()
        except Exception as exc:
            raise AppLoadError(
                f"Error calling the app factory: {type(exc).__name__}: {exc}"
            ) from exc
    if not callable(loaded):
        raise AppLoadError(
            f"The app {app!r} is not callable (got {type(loaded).__name__}); "
            "an ASGI app is a callable taking (scope, receive, send)."
        )
    if is_asgi2(loaded):
        return ASGI2Adapter(loaded)
    return loaded  # type: ignore[no-any-return]
