"""Errors a user sees: each names where the problem is and which rule it breaks."""

from __future__ import annotations


class FlaqumError(Exception):
    """Base class for errors that carry a user-facing message."""


class ConfigError(FlaqumError):
    """The config, a codebook or a hypothesis file breaks its schema or a rule."""


class InputError(FlaqumError):
    """A raw data file cannot be read or breaks the data contract.

    ``message`` is the bare sentence; ``file``, ``row``, ``column``, ``value`` and ``rule`` say
    where and which rule. ``str(exc)`` puts them together once, for a message on its own; a
    validation ``Finding`` takes the parts (so that nothing is printed twice).
    """

    def __init__(self, file, message, *, row=None, column=None, value=None, rule=None):
        self.file, self.row, self.column, self.value, self.rule = file, row, column, value, rule
        self.message = message
        where = [f"file {file}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        if value is not None:
            where.append(f"value {value!r}")
        head = ", ".join(where)
        super().__init__(f"{head}: {message}" + (f" [rule: {rule}]" if rule else ""))
