"""Named choices of a configuration key (methods, data formats, fills, ...): one list each, owned by
the module that implements them, read by ``hkd.config.validate`` for its checks and messages."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from hkd.errors import ConfigError

T = TypeVar("T")


def did_you_mean(value: object, allowed: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed name, or an empty string."""
    close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Mapping[str, T], Generic[T]):
    """``name -> implementation`` for the configuration key ``key`` (e.g. ``method.name``).

    ``@REGISTRY.register("name")`` adds a class or function; a missing name is a ConfigError that
    lists the choices and suggests the closest one."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.key}: '{name}' is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            names = list(self._entries)
            raise ConfigError(f"{self.key}={name!r} is not one of {', '.join(names)}"
                              f"{did_you_mean(name, names)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import every module of a package (``package``, its ``__path__``) so that each registers its
    entries: adding a method or a data format is then one new file, with no list to extend."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")
