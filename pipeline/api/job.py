"""The user-facing job API: JobSpec, its parameters, context and counters.

A job declares everything the mapper may ask of it on ``JobSpec`` itself, each with its
default: what to read (``query``), what to do per entity (``next``), the eight lifecycle hooks,
how its records are written to files (``encode``, ``file_suffix``, ``typed_rows``) and how they
are streamed into BigQuery (``streams_to_bigquery``, ``bigquery_schema``, ``bigquery_table``).
The mapper calls these and never probes a job for attributes it might have.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Iterable, Mapping, Optional, Sequence, Union

from pipeline.api.hooks import HookContext
from pipeline.api.query import ALL_KINDS, ALL_KINDS_TEXT, Query
from pipeline.core import booleans
from pipeline.core.counters import add_count
from pipeline.core.records import record_json
from pipeline.errors import UsageError


class Params(Mapping[str, str]):
    """The run's job parameters (strings), with typed getters that fail clearly.

    ``now`` is the moment the run was launched, in UTC, fixed when the pipeline
    is built: "yesterday" is the same day on every worker.
    """

    def __init__(self, values: Mapping[str, str], now: dt.datetime):
        self._values = dict(values)
        self.now = now

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"

    def date(self, name: str, default: Optional[dt.date] = None) -> dt.date:
        """A YYYY-MM-DD parameter."""
        raw = self._values.get(name)
        if raw is None:
            if default is None:
                raise UsageError(f"job parameter {name!r} is required (a date, YYYY-MM-DD)")
            return default
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise UsageError(f"job parameter {name}={raw!r} is not a date (YYYY-MM-DD)") from None

    def integer(self, name: str, default: Optional[int] = None) -> int:
        raw = self._values.get(name)
        if raw is None:
            if default is None:
                raise UsageError(f"job parameter {name!r} is required (an integer)")
            return default
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"job parameter {name}={raw!r} is not an integer") from None

    def flag(self, name: str, default: bool) -> bool:
        """A true/false parameter, by the CLI's rule for its flags (``pipeline.core.booleans``);
        anything else is an error, not a silent default."""
        raw = self._values.get(name)
        if raw is None:
            return default
        try:
            return booleans.parse_bool(raw)
        except ValueError:
            raise UsageError(f"job parameter {name}={raw!r} is not a boolean: use "
                             f"{booleans.ACCEPTED}") from None

    def kinds(self, name: str = "kind", default: str = "Item") -> Union[str, tuple, Any]:
        """A kind parameter: one kind (``kind=Order``), several separated by ``|``
        (``'kind=Order|Customer'``: ``--params`` already splits on commas), or ``*`` for every
        kind of each namespace (``'kind=*'``): what ``Query(kind=...)`` takes."""
        raw = self._values.get(name, default)
        if raw.strip() == ALL_KINDS_TEXT:
            return ALL_KINDS
        names = [k.strip() for k in raw.split("|")]
        if any(not k for k in names):
            raise UsageError(f"job parameter {name}={raw!r}: an empty kind name; give kinds as "
                             "A|B, or * for every kind")
        if ALL_KINDS_TEXT in names:
            raise UsageError(f"job parameter {name}={raw!r}: * (every kind) cannot be combined "
                             "with kind names")
        return names[0] if len(names) == 1 else tuple(names)

    def text(self, name: str, default: Optional[str] = None) -> str:
        raw = self._values.get(name, default)
        if raw is None:
            raise UsageError(f"job parameter {name!r} is required")
        return raw


class Counters:
    """Named integer counters of one slice; at most ``max_names`` distinct names.

    Names past the cap are not kept (a counter per parent key could otherwise
    exhaust memory); their increments are counted under ``_overflow``.
    """

    __slots__ = ("values", "max_names")

    def __init__(self, max_names: int = 1000):
        self.values: dict[str, int] = {}
        self.max_names = max_names

    def inc(self, name: str, n: int = 1) -> None:
        values = self.values
        name = str(name)  # a non-str name (inc(2024)) must find its counter again
        if name in values:  # the common case, per entity: no call
            values[name] += n
        else:
            add_count(values, name, n, self.max_names)

    def get(self, name: str) -> int:
        return self.values.get(str(name), 0)


class Context:
    """What ``next`` knows about where it is: job, parameters, namespace and kind, range,
    counters."""

    __slots__ = ("job", "params", "namespace", "range_id", "range", "counters", "kind",
                 "transaction", "_keys")

    def __init__(self, job: str, params: Params, namespace: str, range_id: str, range_desc: str,
                 counters: Counters, kind: str = "", keys: Any = None):
        self.job = job
        self.params = params
        self.namespace = namespace
        self.range_id = range_id
        self.range = range_desc
        self.counters = counters
        self.kind = kind  # the kind of the entities of this range
        #: True while ``migrate`` runs inside the writer's transaction (on the current version),
        #: False when it runs on the version read.
        self.transaction = False
        self._keys = keys  # makes keys in the run's project and database (``key``)

    def key(self, *path: Any, namespace: Optional[str] = None) -> Any:
        """A ``google.cloud.datastore.Key`` in the run's project and database, in ``namespace``
        (default: this entity's): for the entities a job writes (``pipeline.Put``). A path
        ending with a kind and no id is incomplete: see ``allocate_ids``."""
        if self._keys is None:
            raise RuntimeError("ctx.key() is available while the job runs on a worker")
        return self._keys.key(path, self.namespace if namespace is None else namespace)

    def allocate_ids(self, kind: str, n: int, namespace: Optional[str] = None,
                     parent: Any = None) -> list:
        """``n`` complete keys of ``kind`` with ids Datastore allocated (never reused)."""
        if self._keys is None:
            raise RuntimeError("ctx.allocate_ids() is available while the job runs on a worker")
        return self._keys.allocate(kind, n, self.namespace if namespace is None else namespace,
                                   parent)


class JobSpec:
    """A mapper job. Subclass it, register it with ``@register``, run it by name.

    - ``query(params)`` returns the ``Query`` to read, built from the run's parameters
      (strings). It runs once, when the pipeline is built, in the launching process, and it is
      also the job's setup: whatever it stores on ``self`` (a parsed parameter, a lookup table)
      is there on every worker, because the job object travels to the workers pickled with the
      graph (keep it picklable; workers need no registry).
    - ``next(ctx, item)`` is called once per key (keys-only queries) or entity.
      It may return or yield output records, and counts with ``ctx.counters.inc``.
    - ``parameters`` documents the job's parameters (name -> help); a parameter
      not listed there is refused, so a typo does not silently fall back to a default.

    Everything else is optional, declared here with its default: the lifecycle hooks, how
    records are written to files, and how they are streamed into BigQuery.
    """

    name: ClassVar[str] = ""
    parameters: ClassVar[Mapping[str, str]] = {}
    #: The parameters that name a file or directory (``restore_entities``' ``from``): the Flex
    #: Template accepts them only as Cloud Storage paths, like ``--output``.
    path_parameters: ClassVar[tuple] = ()

    #: True for a job whose ``next`` yields records (an export): run without a sink for them
    #: (no --output, no --bigquery_table) it is refused at launch, unless --discard_records
    #: says to drop them. A job that only counts leaves it False; should it yield a record
    #: anyway with no sink, the run fails at that record rather than drop it silently.
    #: (Writes to Datastore, once jobs can make them, are not records and need no sink.)
    yields_records: ClassVar[bool] = False

    def query(self, params: Params) -> Query:
        raise NotImplementedError(f"{type(self).__name__} must define query(params)")

    def next(self, ctx: Context, item: Any) -> Optional[Iterable[Any]]:
        raise NotImplementedError(f"{type(self).__name__} must define next(ctx, item)")

    @classmethod
    def defines(cls, name: str) -> bool:
        """Whether this job overrides JobSpec's own ``name`` (a hook, say): the mapper skips
        the work of calling a hook that does nothing."""
        return getattr(cls, name, None) is not getattr(JobSpec, name)

    # -- Lifecycle hooks (the defaults do nothing) ----------------------------------------------
    # Each gets a HookContext with the counters rolled up to its level. They run on workers,
    # inside the graph, and may run more than once when a runner retries a bundle: keep them
    # idempotent. See docs/hooks.md.

    def job_started(self, ctx: HookContext) -> None:
        """Once, before the namespaces are listed."""

    def job_completed(self, ctx: HookContext) -> None:
        """Once, after every namespace completed, with the job's and each namespace's totals."""

    def namespace_started(self, ctx: HookContext) -> None:
        """Once per namespace, when it has been planned into ranges, before they are read."""

    def namespace_completed(self, ctx: HookContext) -> None:
        """Once per namespace, after every range of it completed, with its totals."""

    def range_started(self, ctx: HookContext) -> None:
        """Once per initial range, when the namespace's planning emits it, before it is read."""

    def range_completed(self, ctx: HookContext) -> None:
        """Once per initial range, after all its pieces (slices, splits) were read."""

    def slice_started(self, ctx: HookContext) -> None:
        """Before each slice of a range, on the worker reading it."""

    def slice_completed(self, ctx: HookContext) -> None:
        """After each slice, with that slice's counters."""

    # -- Writing back to Datastore (--writes) ------------------------------------------------

    #: True for a job whose ``next`` yields free mutations (``pipeline.Put``,
    #: ``pipeline.Delete``), written blind. A job defining ``migrate`` writes too.
    writes: ClassVar[bool] = False

    def migrate(self, ctx: Context, entity: Any) -> Any:
        """Read-modify-write: the entity as it should be (changed in place, or a new entity
        with the same key), ``pipeline.DELETE``, or ``pipeline.UNCHANGED`` / None. Called on a
        copy of what was read, and in ``--writes=transactional`` again on the entity's current
        version inside the transaction: it must be idempotent. Not defined by default."""
        raise NotImplementedError(f"{type(self).__name__} does not define migrate")

    #: True for a job that deletes every entity it reads (``delete_entities kind=*`` with no
    #: filter sets it in ``query()``): run for real over every kind with no filter, it ends by
    #: checking that each namespace read holds no entity of any kind, says so in the summary,
    #: or names what is left and fails (``pipeline.graph.erase``).
    empties_namespaces: bool = False

    #: True for a job that reads an undo log instead of querying (``restore_entities``); its
    #: ``query()`` stores the log's location as ``self.undo_location``.
    reads_undo_log: ClassVar[bool] = False

    @classmethod
    def writes_back(cls) -> bool:
        """Whether the job writes to Datastore (the launcher knows before reading)."""
        return bool(cls.writes) or cls.defines("migrate")

    # -- Files (--output) -----------------------------------------------------------------------

    #: The suffix of the job's record files (``OUTPUT/JOB/namespaces/NAMESPACE<suffix>``).
    file_suffix: ClassVar[str] = ".jsonl"

    #: True when ``next`` yields the export format's typed rows
    #: (``pipeline.core.export_format.typed_row``): their BigQuery schema is merged
    #: over the whole run, each row is written as that schema says (not by ``encode``), and the
    #: schema goes to ``OUTPUT/JOB/schema.json`` for ``bq load``.
    typed_rows: ClassVar[bool] = False

    def encode(self, record: Any) -> str:
        """One record as one line of its file (no newline). Default: JSON."""
        return record_json(record)

    # -- BigQuery streaming (--bigquery_table) --------------------------------------------------

    #: True for a job that only makes sense streaming into BigQuery: it is refused without
    #: --bigquery_table.
    streams_to_bigquery: ClassVar[bool] = False

    def bigquery_schema(self, params: Params) -> Optional[Sequence[Any]]:
        """The table's schema: BigQuery's JSON fields (dicts) or ``SchemaField`` objects.

        None (the default) declares none: the records then cannot be streamed, unless they
        are typed rows (``typed_rows``), whose schema is made at launch from a sample of the
        kind."""
        return None

    def bigquery_table(self, namespace: str, record: Any) -> Optional[str]:
        """The table one record goes to: ``TABLE`` (in the dataset of --bigquery_table),
        ``DATASET.TABLE`` or a full name; None (the default): --bigquery_table."""
        return None
