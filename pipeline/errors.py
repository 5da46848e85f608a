"""Errors the user caused or can fix: the CLI prints them without a traceback."""


class MapperError(Exception):
    """A problem with the job, its options or the data, stated for the user."""


class UsageError(MapperError):
    """A bad option value or job parameter."""


class QueryError(MapperError):
    """A query the mapper cannot run as given."""


class JobFailed(MapperError):
    """The job's own code raised while processing an entity or building its query."""
