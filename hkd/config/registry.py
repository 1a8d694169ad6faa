"""Named choices of a configuration key (methods, data formats, fills, ...): the ``Registry`` each
of them is, declared in ``hkd.config.choices`` and read by ``hkd.config.validate`` for its checks and
messages."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from hkd.errors import ConfigError

T = TypeVar("T")


def did_you_mean(value: object, allowed: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed name, or an empty string."""
    close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def not_one_of(subject: str, value: object, allowed: Iterable[str]) -> ConfigError:
    """``SUBJECT is not one of a, b, c (did you mean 'b'?)``: a name outside its choices."""
    names = list(allowed)
    return ConfigError(f"{subject} is not one of {', '.join(names)}{did_you_mean(value, names)}")


class Registry(Mapping[str, T], Generic[T]):
    """``name -> implementation`` for the configuration key ``key`` (e.g. ``method.name``).

    ``builtin`` names each built-in entry's ``"module:attribute"``, imported the first time it is
    looked up, so the names are known without importing any implementation (``hkd.config.choices``);
    ``@REGISTRY.register("name")`` adds one from code outside hkd. A missing name is a ConfigError
    that lists the choices and suggests the closest one."""

    def __init__(self, key: str, builtin: Mapping[str, str] | None = None) -> None:
        self.key = key
        self._builtin = dict(builtin or {})
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._builtin or (name in self._entries and self._entries[name] is not entry):
                raise ValueError(f"{self.key}: '{name}' is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        if name not in self._builtin:
            raise not_one_of(f"{self.key}={name!r}", name, self)
        module, _, attribute = self._builtin[name].partition(":")
        entry = getattr(importlib.import_module(module), attribute)
        self._entries[name] = entry
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._builtin or name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._builtin), **dict.fromkeys(self._entries)})

    def __len__(self) -> int:
        return len(list(iter(self)))
