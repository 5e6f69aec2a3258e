"""Users' own strategies: found by name in the strategy folders, or loaded by file path.

A strategy is named either by a registered name (the built-ins, ``sma_cross``...), by the name of
a class in one of the folders of ``STRATEGY_PATHS`` (its ``name`` attribute when the class sets
one, else the class name), or by ``path/to/file.py:ClassName``. A path is made absolute, so that a
worker process started elsewhere (``--async`` runs on a ``qcluster``) loads the same file: the
name a run stores is what any process can load again.

Loaded classes are added to ``strategies.STRATEGIES`` under the name they were asked for, so the
code that looks strategies up there (the sparse and vectorised paths, the optimisers) finds them.
Pure: no Django here; ``trading.apps`` sets the folders from the settings.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from trading.engine.errors import StrategyConfigError
from trading.engine.strategy import Strategy
from trading.engine.strategy_paths import PATHS, set_strategy_paths

__all__ = ["set_strategy_paths", "strategy_paths"]

_LOCK = threading.RLock()
PREFIX = "rrr_user_strategies."  # the module names users' files are imported under
_MODULES: dict[tuple[str, int], ModuleType] = {}  # (absolute path, mtime_ns) -> module


def strategy_paths() -> list[Path]:
    """Return the folders scanned for user strategies."""
    return list(PATHS)


def is_path_spec(spec: str) -> bool:
    """Return True for ``file.py:ClassName`` (or a bare ``file.py``)."""
    return ".py" in spec and (spec.endswith(".py") or ":" in spec)


def load_module(path: str | Path) -> ModuleType:
    """Import the Python file at ``path`` (again only when it changed); raise if it cannot."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise StrategyConfigError(f"strategy file {file} does not exist")
    key = (str(file), file.stat().st_mtime_ns)
    with _LOCK:
        module = _MODULES.get(key)
        if module is not None:
            return module
        digest = hashlib.sha1(str(file).encode()).hexdigest()[:10]  # noqa: S324 - a name only
        name = f"{PREFIX}{file.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise StrategyConfigError(f"strategy file {file} cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # sys.exit() at import is the file's error too
            sys.modules.pop(name, None)
            raise StrategyConfigError(
                f"strategy file {file} failed to import: {where(exc, file)}"
                f"{type(exc).__name__}: {exc}"
            ) from exc
        _MODULES[key] = module
        return module


def where(exc: BaseException, file: Path | str) -> str:
    """Return ``"line N: "`` for the deepest frame of ``exc`` in ``file`` (else "")."""
    line = None
    for frame, lineno in _frames(exc):
        if Path(frame).resolve() == Path(file).resolve():
            line = lineno
    if line is None and isinstance(exc, SyntaxError) and exc.lineno:
        line = exc.lineno
    return f"line {line}: " if line else ""


def _frames(exc: BaseException) -> list[tuple[str, int]]:
    tb = exc.__traceback__
    out = []
    while tb is not None:
        out.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return out


def strategy_classes(module: ModuleType) -> list[type[Strategy]]:
    """Return the concrete Strategy classes a user module defines (bases are skipped)."""
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Strategy)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
        and not getattr(obj, "abstract", False)
        and not obj.__name__.startswith("_")
    ]


def _is_base(cls: type[Strategy]) -> bool:
    """Return True for the engine's base classes (Strategy, SignalStrategy) and abstract ones."""
    return cls is Strategy or inspect.isabstract(cls) or bool(vars(cls).get("abstract", False))


def display_name(cls: type[Strategy]) -> str:
    """Return the name a user class is known by: its own ``name`` attribute, else its class name."""
    own = vars(cls).get("name")
    return own if isinstance(own, str) and own else cls.__name__


@dataclass(frozen=True, slots=True)
class UserStrategy:
    """A strategy class found in a strategy folder."""

    name: str
    cls: type[Strategy]
    file: Path
    spec: str  # ``/abs/file.py:ClassName``: what a worker loads


def scan() -> tuple[list[UserStrategy], list[str]]:
    """Return the strategies in the strategy folders and the errors of files that failed."""
    found: list[UserStrategy] = []
    errors: list[str] = []
    for folder in strategy_paths():
        if not folder.is_dir():
            continue
        for file in sorted(folder.glob("*.py")):
            if file.name.startswith("_"):
                continue
            try:
                module = load_module(file)
            except StrategyConfigError as exc:
                errors.append(str(exc))
                continue
            for cls in strategy_classes(module):
                spec = f"{file.resolve()}:{cls.__name__}"
                found.append(UserStrategy(display_name(cls), cls, file.resolve(), spec))
    return found, errors


def load_spec(spec: str) -> tuple[str, type[Strategy]]:
    """Return ``(canonical spec, class)`` for ``path.py:ClassName`` (or a one-class file)."""
    path, _, class_name = spec.rpartition(":") if not spec.endswith(".py") else (spec, "", "")
    module = load_module(path)
    file = Path(path).expanduser().resolve()
    classes = strategy_classes(module)
    if class_name:
        cls = getattr(module, class_name, None)
        if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
            names = ", ".join(c.__name__ for c in classes) or "none"
            raise StrategyConfigError(
                f"{file} has no strategy class {class_name!r} (strategy classes: {names})"
            )
        if _is_base(cls):  # e.g. file.py:SignalStrategy, imported there: runs nothing
            names = ", ".join(c.__name__ for c in classes) or "none"
            raise StrategyConfigError(
                f"{file}:{class_name} is a base class, not a strategy (strategy classes: {names})"
            )
    elif len(classes) == 1:
        cls = classes[0]
    else:
        names = ", ".join(c.__name__ for c in classes) or "none"
        raise StrategyConfigError(f"{file}: say which class with {file}:ClassName (found {names})")
    return f"{file}:{cls.__name__}", cls


def find(name: str) -> tuple[str, type[Strategy]] | None:
    """Return ``(spec, class)`` of the user strategy called ``name`` in the folders, or None."""
    found, errors = scan()
    matches = [u for u in found if name in (u.name, u.cls.__name__)]
    if len(matches) > 1:
        files = ", ".join(u.spec for u in matches)
        raise StrategyConfigError(f"strategy {name!r} is defined more than once: {files}")
    if matches:
        return matches[0].spec, matches[0].cls
    if errors:
        raise StrategyConfigError(f"strategy {name!r} not found; " + "; ".join(errors))
    return None
