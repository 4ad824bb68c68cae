"""Exception hierarchy of romancore.

Every error a user can cause (bad file, bad parameter, bad metadata) derives
from :class:`RomancoreError`, so callers and the CLIs can tell user errors from
bugs.  Messages name the file, the field, the value and the rule broken.
"""

import jsonschema


class RomancoreError(Exception):
    """Base class of every romancore error."""


class FileFormatError(RomancoreError, OSError):
    """A file cannot be read: missing, truncated, corrupted or not ASDF."""


class WrongModelError(RomancoreError, TypeError):
    """A file or object holds a different kind of model than the one asked for."""


class ValidationError(RomancoreError, jsonschema.ValidationError):
    """Metadata or an array breaks the schema of its model.

    A subclass of :class:`jsonschema.ValidationError`, so code written against
    jsonschema catches it too.
    """

    def __init__(self, message, **kwargs):
        jsonschema.ValidationError.__init__(self, message, **kwargs)

    def __str__(self):
        return self.message


class ParameterError(RomancoreError, ValueError):
    """A step or pipeline parameter has a bad value or is unknown."""


class ReferenceFileError(RomancoreError):
    """A reference file needed by a step cannot be found or is unusable."""


class NoScienceDataError(RomancoreError):
    """The input holds no science data (the CLIs exit with status 64)."""


class OutputTooLargeError(RomancoreError, MemoryError):
    """A requested output array would exceed the allowed memory."""
