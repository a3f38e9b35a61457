"""Exception types raised at ddfast's boundaries (files, configs, user input)."""


class DDFastError(Exception):
    """Base class of every error ddfast raises on purpose."""


class ConfigError(DDFastError, ValueError):
    """A configuration value is invalid (unknown version, impossible size, ...)."""


class DatasetError(DDFastError, OSError):
    """A dataset path is missing or its files do not have the expected layout."""


class BitstreamError(DDFastError, ValueError):
    """A .ddf file or coded stream is damaged, truncated or of an unknown format."""
