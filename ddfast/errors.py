"""Exception types raised at ddfast's boundaries (files, configs, user input).

Each also subclasses the built-in a caller would expect (ValueError, TypeError, OSError,
RuntimeError), so code written against the built-ins keeps working.
"""


class DDFastError(Exception):
    """Base class of every error ddfast raises on purpose."""


class ConfigError(DDFastError, ValueError):
    """An argument or configuration value is invalid (unknown version, impossible size, ...)."""


class ArgumentTypeError(ConfigError, TypeError):
    """An argument has the wrong Python type (a ConfigError that is also a TypeError)."""


class DatasetError(DDFastError, OSError):
    """A dataset path is missing or its files do not have the expected layout."""


class BitstreamError(DDFastError, ValueError):
    """A .ddf file or coded stream is damaged, truncated or of an unknown format."""


class BackendError(DDFastError, RuntimeError):
    """A compute backend cannot run here or failed (no CUDA device or nvcc, a build or kernel error)."""
