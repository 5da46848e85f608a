"""Our own error found inside whatever a runner wrapped it in (``failure_message``)."""
from __future__ import annotations

from pipeline.errors import JobFailed, UsageError
from pipeline.launch.cli import list_jobs, plain_text
from pipeline.launch.logs import failure_message


def test_failure_message_finds_our_error_inside_a_runner_error():
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in process\n"
            "pipeline.errors.JobFailed: job x failed on entity K(1) in namespace a: "
            "ValueError: boom [while running 'Mapper/ReadRanges']")
    msg = failure_message(RuntimeError(text))
    assert msg == ("job x failed on entity K(1) in namespace a: ValueError: boom "
                   "(in step Mapper/ReadRanges)")
    # Without the step suffix, and with trailing lines.
    msg = failure_message(RuntimeError("...\npipeline.errors.QueryError: bad query\nmore\n"))
    assert msg == "bad query"


def test_failure_message_from_a_multi_process_runner_error():
    # The text FnApiRunner (multi_processing) raises, as a RuntimeError, for a JobFailed.
    text = ('eam.runners.common.DoFnRunner.process\n  File "apache_beam/runners/common.py", '
            "line 687, in apache_beam.runners.common.SimpleInvoker.invoke_process\n"
            '  File "jobs/x.py", line 7, in process\n    raise JobFailed("...")\n'
            "pipeline.errors.JobFailed: job x failed on entity K(1) in namespace a: ValueError: "
            "boom [while running 'Mapper/ReadRanges']\n")
    assert failure_message(RuntimeError(text)) == (
        "job x failed on entity K(1) in namespace a: ValueError: boom (in step Mapper/ReadRanges)")


def test_failure_message_ignores_other_libraries_errors_with_similar_names():
    # Regression: the pattern had no left boundary, so these were reported as the mapper's own.
    for text in ["click.exceptions.UsageError: no such option: --x",
                 "apache_beam.io.gcp.bigquery_tools.BigQueryError: quota [while running 'W']",
                 "mylib.QueryError: bad sql",
                 "SomeJobFailed: other thing"]:
        assert failure_message(RuntimeError(text)) is None, text
    # ... while our classes are still found with or without their module, after any separator.
    assert failure_message(RuntimeError("JobFailed: j failed")) == "j failed"
    assert failure_message(RuntimeError("wrapped: UsageError: bad")) == "bad"


def test_failure_message_takes_the_last_of_several():
    text = ("pipeline.errors.JobFailed: first [while running 'A']\n"
            "RuntimeError: wrapped\npipeline.errors.JobFailed: second [while running 'B']")
    assert failure_message(Exception(text)) == "second (in step B)"


def test_failure_message_of_our_own_errors_and_unrelated_ones():
    assert failure_message(JobFailed("job y failed")) == "job y failed"
    assert failure_message(UsageError("bad option")) == "bad option"
    unrelated = RuntimeError("ValueError: boom [while running 'Mapper/ReadRanges']")
    assert failure_message(unrelated) is None
    assert failure_message(ValueError("something else entirely")) is None
    assert failure_message(RuntimeError("")) is None


def test_list_jobs_shows_plain_text_not_rst_markup():
    assert plain_text("by ``value:<v>`` for `bq load`") == "by value:<v> for bq load"
    assert plain_text("no markup: a*b") == "no markup: a*b"
    text = list_jobs([])
    assert "`" not in text, text
    assert "(value:<v> counters)" in text and "stream_entities" in text


def test_list_jobs_shows_whole_first_sentences_wrapped_not_cut():
    """Each job's first sentence is shown whole (a docstring's lines are joined, not its first
    line taken), wrapped to the listing's width."""
    import re

    from pipeline.api.registry import known_jobs
    from pipeline.launch.cli import LIST_WIDTH, first_sentence

    assert first_sentence("Count the keys (e.g. of\n    Orders). Then more.") == \
        "Count the keys (e.g. of Orders)."
    text = list_jobs([])
    lines = text.splitlines()
    assert all(len(line) <= LIST_WIDTH for line in lines), [ln for ln in lines if len(ln) > 100]
    flat = " ".join(" ".join(lines).split())
    for name, cls in known_jobs().items():
        sentence = " ".join(plain_text(first_sentence(cls.__doc__ or "")).split())
        assert re.search(r"[.!?]$", sentence), (name, sentence)  # a whole sentence
        assert f"{name} {sentence}" in flat, (name, sentence)
    # backup_entities' first docstring line stopped at "keys, value": the sentence goes on.
    assert "keys, value types, exclude-from-indexes, nested entities." in flat


def test_a_google_cloud_error_no_step_explained_is_one_line_not_a_traceback():
    """The Datastore emulator out of memory while listing 20,000 namespaces answered UNKNOWN:
    the in-process runner re-raises the client's error as it is, with the step appended."""
    from google.api_core import exceptions as gexc
    # Beam's re-raise: type(e)(e.args[0] + " [while running 'STEP']"); str() adds the code, None
    msg = failure_message(gexc.Unknown(" [while running 'Mapper/ExpandNamespaces']"))
    assert msg.startswith("a Google Cloud call failed with Unknown (no message) in step "
                          "Mapper/ExpandNamespaces; no step explains this error"), msg
    assert "\n" not in msg and "emulator" in msg
    # ... and inside a runner's text, as another runner wraps it
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 3, in process\n"
            "google.api_core.exceptions.InternalServerError: 500 backend error "
            "[while running 'Mapper/ReadRanges']\n")
    assert failure_message(RuntimeError(text)).startswith(
        "a Google Cloud call failed with InternalServerError (500 backend error) in step "
        "Mapper/ReadRanges;")
    # our own error still wins, and a bug of ours keeps its traceback
    assert failure_message(RuntimeError(text + "pipeline.errors.JobFailed: j failed")) == \
        "j failed"
    assert failure_message(RuntimeError("mylib.exceptions.Unknown: x")) is None
    assert failure_message(RuntimeError("google.api_core.exceptions.NotAnError: x")) is None
    assert failure_message(KeyError("google")) is None
