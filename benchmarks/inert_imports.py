"""Stand-ins for modules a reference checker's import chain names but its checking never uses
(provider SDKs, `datasets`): imported first by the parity workers, so only the checker itself and
what it really calls need installing in the throwaway venv.
"""

import importlib.abc
import importlib.machinery
import sys
import types


class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert


class _Inert(metaclass=_Meta):
    """Stands for any attribute of a module nobody installed; does nothing when called."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert()

    def __class_getitem__(cls, item):
        return cls

    def __or__(self, other):
        return self

    __ror__ = __and__ = __rand__ = __or__

    def __iter__(self):
        return iter(())


class _InertModule(types.ModuleType):
    __path__ = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert


class _InertFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: a stand-in for the named packages only, when they are not installed
    (anything else missing stays missing: code that tries an import to learn the platform must
    still see an ImportError)."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _InertModule(spec.name)

    def exec_module(self, module):
        pass


def install(names) -> None:
    """Stand-ins from now on for these top-level packages where nobody installed them."""
    sys.meta_path.append(_InertFinder(names))
