"""Faster construction of frozen, slotted dataclasses: the engine's event and order records.

A frozen dataclass's generated ``__init__`` stores every field through ``object.__setattr__``
(the class's own ``__setattr__`` refuses), which costs about 80 ns a field in CPython 3.11; a
backtest builds several such records per order (bars, intents, venue events, fills).
``fast_init`` swaps in an ``__init__`` that stores through each field's slot descriptor instead:
the same parameters and defaults (checked against the generated one), instances exactly as
frozen, hashable, comparable, picklable and ``dataclasses.replace``-able as before.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass ``cls`` a faster ``__init__``; return ``cls``.

    Refuses classes it cannot rebuild exactly: not frozen or not slotted, with a
    ``__post_init__``, ``InitVar``s, fields left out of ``__init__`` or default factories.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or not params.init or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__}: fast_init needs a frozen dataclass with slots=True")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init cannot run __post_init__")
    namespace: dict[str, object] = {}
    positional, keyword, body = [], [], []
    for f in dataclasses.fields(cls):
        if not f.init or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: fast_init needs plain init fields")
        slot = next(vars(k)[f.name] for k in cls.__mro__ if f.name in vars(k))
        namespace[f"_set_{f.name}"] = slot.__set__
        param = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            param = f"{f.name}=_default_{f.name}"
        (keyword if f.kw_only else positional).append(param)
        body.append(f"    _set_{f.name}(self, {f.name})\n")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    exec(f"def __init__({signature}):\n{''.join(body) or '    pass'}\n", namespace)  # noqa: S102
    init = namespace["__init__"]
    generated = inspect.signature(cls.__init__)  # type: ignore[misc]
    if _shape(inspect.signature(init)) != _shape(generated):  # type: ignore[arg-type]
        raise TypeError(f"{cls.__name__}: fast_init built a different signature")
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    init.__module__ = cls.__module__
    init.__doc__ = f"Initialise a {cls.__name__} (see ``marketdata.engine.records``)."
    cls.__init__ = init  # type: ignore[misc]
    return cls


def _shape(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    """Return each parameter's name, kind and default (annotations aside)."""
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def record_builder(cls: type[T]) -> Callable[..., T]:
    """Return a function that builds ``cls`` as ``cls(...)`` does, for hot construction sites.

    Calling a class runs ``type.__call__``, ``__new__`` and ``__init__``; the function instead
    fills a plain object with the very same slots by ordinary attribute stores and then gives
    it ``cls`` as its class (CPython allows ``__class__`` assignment between classes of one
    layout): a genuine, frozen ``cls`` instance, equal to the one ``cls(...)`` builds, in about
    half the time. Same parameters and defaults (checked). Where the layout cannot be copied
    (inherited slots, ``__post_init__``, default factories), the builder is ``cls`` itself.
    """
    params = getattr(cls, "__dataclass_params__", None)
    names = getattr(cls, "__slots__", None)
    fields = dataclasses.fields(cls) if params is not None else ()  # type: ignore[arg-type]
    if (
        params is None
        or not params.init
        or hasattr(cls, "__post_init__")
        or cls.__bases__ != (object,)
        or names != tuple(f.name for f in fields)
        or any(not f.init or f.default_factory is not dataclasses.MISSING for f in fields)
    ):
        return cls
    twin = type(f"_{cls.__name__}Slots", (), {"__slots__": names})
    namespace: dict[str, object] = {"_Twin": twin, "_Cls": cls}
    positional, keyword = [], []
    for f in fields:
        param = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            param = f"{f.name}=_default_{f.name}"
        (keyword if f.kw_only else positional).append(param)
    signature = ", ".join([*positional, *(["*", *keyword] if keyword else [])])
    body = "".join(f"    obj.{name} = {name}\n" for name in names)
    source = (
        f"def build({signature}):\n    obj = _Twin()\n{body}"
        "    obj.__class__ = _Cls\n    return obj\n"
    )
    exec(source, namespace)  # noqa: S102 - code built from the class's own field names
    build = namespace["build"]
    probe = twin()
    try:
        probe.__class__ = cls  # a layout CPython will not swap: use the class itself
    except TypeError:
        return cls
    init = cls.__init__  # type: ignore[misc]
    if _shape(inspect.signature(build)) != _shape(inspect.signature(init))[1:]:  # type: ignore[arg-type]
        return cls
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"  # type: ignore[attr-defined]
    build.__module__ = cls.__module__
    return build  # type: ignore[return-value]
