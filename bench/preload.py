"""What the fork server imports once, so that no worker process pays for it (bench.isolation): torch and the
measurement code (bench.worker), and the model registry with every model module and installed plugin
(about as long as importing torch). A worker then starts with them imported and nothing else done."""

import contextlib

import zoo
from bench import worker  # noqa: F401

zoo.list_models()
with contextlib.suppress(Exception):  # a broken plugin is reported by the worker that imports it again
    zoo.load_entry_points()
