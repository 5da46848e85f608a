"""Records never vanish silently: a job that yields them needs somewhere to put them.

Where a run's records go: files (``--output``), BigQuery (``--bigquery_table``), or nowhere
on purpose (``--discard_records``). A job declares on ``JobSpec.yields_records`` that it
yields records; run with none of the three it is refused at launch, naming them. A job that
only counts (the default declaration) needs none; should it yield a record anyway with no
sink, the reading step fails the run at that record (``pipeline.graph.apply``).

Writes back to Datastore (``migrate``, ``Put``/``Delete``) are not records and need no sink:
their own checks (a dry run by default, the undo log's place) are ``resolve.write_config``'s.
"""
from __future__ import annotations

from typing import Optional

from pipeline.config import RunConfig
from pipeline.errors import UsageError

#: The choices a job's records have, as the refusal names them.
CHOICES = ("--output DIR (one file per namespace), --bigquery_table [PROJECT:]DATASET.TABLE "
           "(streamed), or --discard_records (counted, kept nowhere)")


def has_a_sink(run: RunConfig, bigquery_table: Optional[str]) -> bool:
    out = run.output
    return bool(out.directory or bigquery_table or out.discard_records)


def check_records_have_a_sink(run: RunConfig, bigquery_table: Optional[str]) -> None:
    """Refuse a job that declares records when the run has nowhere for them."""
    if run.job.spec.yields_records and not has_a_sink(run, bigquery_table):
        raise UsageError(f"job {run.job.name} yields records, and this run has nowhere to put "
                         f"them: pass {CHOICES}")
