"""What the zoo raises for a model name it cannot build: one line each, for the command line to print."""

from __future__ import annotations


class UnknownModelError(KeyError):
    """Raised for a name that no builder is registered under, or a library model spec that names an unknown
    library, architecture, encoder or builder."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MissingLibraryError(ImportError):
    """Raised for a library model whose library is not installed; the message says what to install."""
