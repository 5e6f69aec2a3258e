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
from collections.abc import Callable, Mapping, Sequence
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


def compile_builder(
    cls: type[T],
    name: str,
    signature: str,
    values: Mapping[str, str],
    *,
    namespace: Mapping[str, object] | None = None,
    after: str = "",
) -> Callable[..., T]:
    """Compile ``def name(signature)`` returning a ``cls`` with every field stored, for hot
    construction sites: from ``values`` (field -> a source expression over the parameters and
    ``namespace``), else at the field's default (its factory called; literal defaults inlined).

    Frozen classes are filled through a subclass adding no slots but plain attribute setting
    (ordinary stores, which CPython specialises for slots) and then given ``cls`` as their
    class (allowed between classes of one layout, and checked quickest for a subclass that
    adds nothing): a genuine, frozen ``cls``. Other classes are made by ``object.__new__`` and
    filled by ordinary stores. ``after``: a source line run on ``obj`` before it is returned
    (a conditional ``__post_init__``, say). Callers check the result against ``cls(...)``.
    """
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    scope: dict[str, object] = {"_Cls": cls, "_new": object.__new__, **(namespace or {})}
    if params.frozen:
        scope["_Twin"] = type(
            f"_{cls.__name__}Slots",
            (cls,),
            {
                "__slots__": (),
                "__init__": object.__init__,
                "__setattr__": object.__setattr__,
                "__delattr__": object.__delattr__,
            },
        )
        lines = ["    obj = _Twin()"]
    else:
        lines = ["    obj = _new(_Cls)"]
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            expr = values[f.name]
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"_factory_{f.name}"] = f.default_factory
            expr = f"_factory_{f.name}()"
        elif f.default is None or type(f.default) in (bool, int, str):
            expr = repr(f.default)  # a constant: no global lookup
        else:
            scope[f"_default_{f.name}"] = f.default
            expr = f"_default_{f.name}"
        lines.append(f"    obj.{f.name} = {expr}")
    if after:
        lines.append(f"    {after}")
    if params.frozen:
        lines.append("    obj.__class__ = _Cls")
    source = f"def {name}({signature}):\n" + "\n".join(lines) + "\n    return obj\n"
    exec(source, scope)  # noqa: S102 - code built from the class's own field names
    build = scope[name]
    build.__qualname__ = name  # type: ignore[attr-defined]
    build.__module__ = cls.__module__
    return build  # type: ignore[return-value]


def record_builder(cls: type[T], given: Sequence[str] | None = None) -> Callable[..., T]:
    """Return a function that builds ``cls`` as ``cls(...)`` does, for hot construction sites.

    Calling a class runs ``type.__call__``, ``__new__`` and ``__init__``; the function
    (``compile_builder``) fills the slots by ordinary stores instead and swaps the class in: a
    genuine, frozen ``cls`` instance, equal to the one ``cls(...)`` builds, in about half the
    time. Same parameters and defaults (checked), or with ``given`` only those leading fields,
    positionally (the rest at their defaults). Where the layout cannot be copied (no slots of
    its own, ``__post_init__``, default factories, a field left out of ``__init__``), the
    builder is ``cls`` itself.
    """
    params = getattr(cls, "__dataclass_params__", None)
    names = getattr(cls, "__slots__", None)
    fields = dataclasses.fields(cls) if params is not None else ()  # type: ignore[arg-type]
    taken = tuple(f.name for f in fields) if given is None else tuple(given)
    if (
        params is None
        or not params.init
        or not params.frozen
        or hasattr(cls, "__post_init__")
        or names != tuple(f.name for f in fields)
        or taken != names[: len(taken)]
        or any(not f.init or f.default_factory is not dataclasses.MISSING for f in fields)
        or any(f.default is dataclasses.MISSING for f in fields[len(taken) :])
    ):
        return cls
    if given is None:  # the class's own signature: defaults and keyword-only fields too
        positional, keyword = [], []
        namespace: dict[str, object] = {}
        for f in fields:
            param = f.name
            if f.default is not dataclasses.MISSING:
                namespace[f"_default_{f.name}"] = f.default
                param = f"{f.name}=_default_{f.name}"
            (keyword if f.kw_only else positional).append(param)
        signature = ", ".join([*positional, *(["*", *keyword] if keyword else [])])
    else:
        namespace, signature = {}, ", ".join(taken)
    try:
        build = compile_builder(
            cls, f"build_{cls.__name__}", signature, {n: n for n in taken}, namespace=namespace
        )
        build(**{f.name: f.default for f in fields[: len(taken)]})  # a layout it cannot swap
    except TypeError:
        return cls
    if given is None:
        init = cls.__init__  # type: ignore[misc]
        if _shape(inspect.signature(build)) != _shape(inspect.signature(init))[1:]:
            return cls
    return build
