"""Models registered by installed packages, through entry points in the group `segbench.models`.

A package declares, in its pyproject.toml:

    [project.entry-points."segbench.models"]
    mynets = "mypackage.models"            # a module: importing it registers its models (register_model)
    more = "mypackage.zoo:register"        # a callable: called once, with no arguments, to register them

`segbench` loads them once per process, beside the modules given with `--plugins`.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "segbench.models"

_loaded: set[tuple[str, str]] = set()


class PluginError(ImportError):
    """An entry point that failed to load or to register its models; the message names it, in one line."""


def load_entry_points() -> list[str]:
    """Load the `segbench.models` entry points not loaded yet in this process; their names, in load order."""
    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (ep.name, ep.value) in _loaded:
            continue
        try:
            target = ep.load()
            if callable(target):
                target()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of a plugin (sys.exit too) is reported the same way
            dist = f" of {ep.dist.name} {ep.dist.version}" if ep.dist else ""
            lines = str(exc).strip().splitlines()
            raise PluginError(
                f"{ENTRY_POINT_GROUP} entry point {ep.name!r} ({ep.value}){dist} failed: "
                f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
            ) from exc
        _loaded.add((ep.name, ep.value))
        names.append(ep.name)
    return names
