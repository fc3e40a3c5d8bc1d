"""The error every loader raises for data that does not follow its schema."""

from r3v_eval.errors import R3VError


class DataError(R3VError):
    """A data file or row that does not follow the expected schema."""
