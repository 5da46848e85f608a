"""One retry mechanism for Datastore calls (``pipeline.datastore.retry``)."""
from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from pipeline.core.retry import RetryPolicy
from pipeline.datastore import retry

FAST = RetryPolicy(initial=0.001, maximum=0.001, deadline=5.0)


def test_call_retries_transient_errors_only():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise gexc.ServiceUnavailable("busy")
        return "ok"

    retried = []
    assert retry.call(flaky, "t", FAST, on_retry=retried.append) == "ok"
    assert len(calls) == 3 and len(retried) == 2

    def fatal():
        calls.append(1)
        raise gexc.PermissionDenied("no")

    calls.clear()
    with pytest.raises(gexc.PermissionDenied):
        retry.call(fatal, "t", FAST)
    assert len(calls) == 1

    def always_busy():
        calls.append(1)
        raise gexc.DeadlineExceeded("slow")

    calls.clear()
    # Past the deadline: one error naming the call, the service, how long, and the last error.
    with pytest.raises(retry.DatastoreUnavailable) as e:
        retry.call(always_busy, "listing namespaces",
                   RetryPolicy(initial=0.001, maximum=0.001, deadline=0.05),
                   where="the Datastore emulator at 127.0.0.1:9")
    assert len(calls) >= 3
    msg = str(e.value)
    assert msg.startswith("listing namespaces: the Datastore emulator at 127.0.0.1:9 kept failing")
    assert "--datastore_deadline" in msg and "DeadlineExceeded: slow" in msg


def test_the_clients_own_retry_error_is_transient():
    """google-api-core raises RetryError when the client's own retry gives up: retried too."""
    calls = []

    def gave_up():
        calls.append(1)
        if len(calls) < 2:
            raise gexc.RetryError("Timeout of 60.0s exceeded", gexc.ServiceUnavailable("down"))
        return "ok"

    assert retry.call(gave_up, "t", FAST) == "ok" and len(calls) == 2
    opts = retry.call_options(RetryPolicy(rpc_timeout=7.0))
    assert opts["timeout"] == 7.0
    assert opts["retry"] is retry.NO_CLIENT_RETRY


def test_stream_resumes_from_the_position_its_target_keeps():
    """A stream that fails mid-way is called again; its target resumes after the last item it
    gave, so nothing is handed over twice and nothing is lost."""
    given = []  # the items handed over so far: the target's own position
    failures = iter([3, 7])  # fail once after the 3rd item and once after the 7th

    def target():
        fail_at = next(failures, None)
        for i in range(len(given), 10):
            if i == fail_at:
                raise gexc.ServiceUnavailable(f"dropped at {i}")
            given.append(i)
            yield i

    retried = []
    out = list(retry.stream(target, "reading", FAST, on_retry=retried.append))
    assert out == list(range(10)) and len(retried) == 2

    def broken():
        yield 1
        raise gexc.PermissionDenied("no")

    with pytest.raises(gexc.PermissionDenied):
        list(retry.stream(broken, "reading", FAST))


def test_the_launch_checks_are_short_and_never_longer_than_the_run_allows():
    from pipeline.core.retry import LAUNCH_RETRY, RetryPolicy, for_launch
    default = for_launch(RetryPolicy())  # --datastore_deadline 300, --datastore_call_timeout 60
    assert (default.deadline, default.rpc_timeout) == (20.0, 8.0) == (LAUNCH_RETRY.deadline,
                                                                       LAUNCH_RETRY.rpc_timeout)
    short = for_launch(RetryPolicy(deadline=2.0, rpc_timeout=1.5))
    assert (short.deadline, short.rpc_timeout) == (2.0, 1.5)
    assert short.initial == LAUNCH_RETRY.initial and short.maximum == LAUNCH_RETRY.maximum
    # A deadline shorter than a call's timeout: no one call outlasts the deadline ("checked for
    # 3 s" was "kept failing for 8 s").
    tight = for_launch(RetryPolicy(deadline=3.0))
    assert (tight.deadline, tight.rpc_timeout) == (3.0, 3.0)


def test_the_call_timeout_option_reaches_the_read_policy():
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.launch.resolve import resolve
    base = ["--job", "count_keys", "--emulator_host", "127.0.0.1:1", "--project", "p"]
    assert resolve(PipelineOptions(base)).read.retry.rpc_timeout == 60.0
    run = resolve(PipelineOptions(base + ["--datastore_call_timeout", "7",
                                          "--datastore_deadline", "30"]))
    assert (run.read.retry.rpc_timeout, run.read.retry.deadline) == (7.0, 30.0)


def test_launch_retries_are_short_until_the_service_answered_then_the_run_s():
    """``LaunchRetry``: before an answer, the launch's cap and no retry of a misconfiguration;
    after one, the run's own deadline (the launch's backoff and per-call timeout kept), and a
    refusal is retried too (the service was there)."""
    from pipeline.core.retry import LAUNCH_RETRY, LaunchRetry, misconfigured
    launch = LaunchRetry(RetryPolicy(deadline=300.0, rpc_timeout=60.0))
    refused = gexc.ServiceUnavailable("failed to connect to all addresses; last error: UNKNOWN: "
                                      "ipv4:127.0.0.1:9: Failed to connect to remote host: "
                                      "Connection refused")
    reset = gexc.ServiceUnavailable("Stream removed (recvmsg:Connection reset by peer (104))")
    retried = launch.retries(retry.is_transient)
    assert (launch.policy().deadline, launch.policy().rpc_timeout) == (20.0, 8.0)
    assert launch.refused(refused) == "connection refused" and not retried(refused)
    assert launch.refused(reset) is None and retried(reset)
    launch.answered = True
    p = launch.policy()
    assert (p.deadline, p.rpc_timeout, p.maximum) == (300.0, 8.0, LAUNCH_RETRY.maximum)
    assert launch.refused(refused) is None and retried(refused)
    assert not retried(gexc.PermissionDenied("no"))
    # Never longer than the run allows, before or after.
    short = LaunchRetry(RetryPolicy(deadline=5.0, rpc_timeout=2.0))
    assert (short.policy().deadline, short.policy().rpc_timeout) == (5.0, 2.0)
    short.answered = True
    assert (short.policy().deadline, short.policy().rpc_timeout) == (5.0, 2.0)
    assert misconfigured(ConnectionError("x")) is None
    assert misconfigured(OSError("wrapped")) is None
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as outer:
        assert misconfigured(outer) == "connection refused"  # found through the cause
    # Something that does not speak gRPC (a web server) on the emulator's port: not retried.
    web = gexc.ServiceUnavailable("failed to connect to all addresses; last error: UNAVAILABLE: "
                                  "ipv4:127.0.0.1:8080: Failed parsing HTTP/2 (Expected SETTINGS "
                                  "frame as the first frame, got frame type 79)")
    fresh = LaunchRetry(RetryPolicy())
    assert fresh.refused(web) == "something else answers there (not gRPC)"
    assert not fresh.retries(retry.is_transient)(web)


def test_launch_call_fails_at_once_on_a_misconfiguration_and_marks_an_answer():
    from pipeline.core.retry import LaunchRetry
    launch = LaunchRetry(RetryPolicy(initial=0.001, maximum=0.001, deadline=5.0))
    calls = []

    def refused(policy):
        calls.append(policy)
        raise gexc.ServiceUnavailable("errors resolving nosuchhost:8081: Domain name not found")

    with pytest.raises(retry.DatastoreUnreachable) as e:
        retry.launch_call(refused, "listing namespaces", launch, where="the emulator at x")
    assert len(calls) == 1 and "unknown host" in str(e.value) and not launch.answered
    assert retry.launch_call(lambda policy: "ok", "listing", launch) == "ok" and launch.answered
