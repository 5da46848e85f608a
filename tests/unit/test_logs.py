"""pipeline/launch/logs.py: secrets redacted from every record and from the CLI's error line,
the log level from DATASTORE_MAPPER_LOG_LEVEL, worker lines decoded intact."""
from __future__ import annotations

import io
import json
import logging

import pytest

from pipeline.launch import logs
from pipeline.launch.logs import (
    REDACTED,
    RedactingFilter,
    WorkerLogFilter,
    level_setting,
    redact,
)

PEM_BODY = ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
            "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n")
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}-----END PRIVATE KEY-----\n"
TOKEN = "ya29.a0AfB_byC-SECRETtokenVALUE_0123456789-abcdefXYZ"


def secret_free(text: str, *secrets: str) -> bool:
    return not any(s in text for s in secrets)


# --- redact() -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, secrets", [
    (PEM, ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"]),
    (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----",
     ["MzEfYyjiWA4R4"]),
    (f"-----BEGIN ENCRYPTED PRIVATE KEY-----{PEM_BODY}", ["MzEfYyjiWA4R4"]),  # cut short
    (json.dumps({"private_key": PEM}), ["MIIEvQIBAD", "MzEfYyjiWA4R4"]),  # \n escaped
    (repr({"private_key": PEM}), ["MIIEvQIBAD"]),
    (f"token {TOKEN} expired", ["SECRETtokenVALUE", "ya29.a0"]),
    ('{"access_token": "' + TOKEN + '", "expires_in": 3599}', ["SECRETtokenVALUE"]),
    ('{"refresh_token": "1//0gSECRETrefresh-tok_en", "client_id": "x"}', ["SECRETrefresh"]),
    ("{'client_secret': 'GOCSPX-SECRETclientSECRET'}", ["SECRETclientSECRET"]),
    ('"client_secret" : "GOCSPX-with \\" quote SECRET2"', ["quote SECRET2"]),
    ('{"private_key_id": "0123abcdSECRETKEYID", "type": "service_account"}', ["SECRETKEYID"]),
    ('body=grant_type%3Drefresh&refresh_token=1%2F%2FSECRETform&client_secret=SECRETform2',
     ["SECRETform", "SECRETform2"]),
    ('"{\\"private_key_id\\": \\"SECRETinner\\", \\"x\\": 1}"', ["SECRETinner"]),  # JSON in JSON
    ("Authorization: Bearer abcDEF123SECRETbearer.token-x", ["SECRETbearer"]),
    ("metadata=(('authorization', 'Bearer SECRETmetadataTOKEN123'),)", ["SECRETmetadataTOKEN"]),
    ('"private_key": "-----BEGIN PRIVATE KEY-----\\nMIISECRETcut', ["MIISECRETcut"]),  # cut short
], ids=["pem", "pem-rsa", "pem-cut", "pem-in-json", "pem-in-repr", "access-token",
        "access-token-json", "refresh-token", "client-secret-repr", "escaped-quote",
        "private-key-id", "form-body", "json-in-json", "bearer-header", "bearer-grpc-metadata",
        "json-cut"])
def test_redact_removes_the_secret(text, secrets):
    out = redact(text)
    assert REDACTED in out
    assert secret_free(out, *secrets), out


def test_redact_keeps_the_rest_of_the_text():
    text = ('failed to load {"type": "service_account", "private_key_id": "abc123", '
            '"client_email": "mapper@p.iam.gserviceaccount.com"} from /tmp/sa.json')
    assert redact(text) == ('failed to load {"type": "service_account", "private_key_id": '
                            '"[REDACTED]", "client_email": "mapper@p.iam.gserviceaccount.com"} '
                            'from /tmp/sa.json')
    assert redact(f"key: {PEM}done") == "key: [REDACTED]\ndone"
    assert redact("Authorization: Bearer abcdefgh12345678") == "Authorization: Bearer [REDACTED]"


@pytest.mark.parametrize("text", [
    "job count_keys: 5165 entities in 5 namespaces, 26 ranges, 7.2 s (716 entities/s)",
    "error: --shards 0 is not allowed: use a number from 1 to 10 000",
    "namespace über データ: private keys are not logged; the bearer of bad news",
    "kind 'Nope' has no entities in any namespace; kinds found: Item, Parent",
    "",
])
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def test_redact_takes_anything():
    assert redact(ValueError(f"bad {TOKEN}")) == f"bad {REDACTED}"


# --- the filter on the handlers ----------------------------------------------------------------


def _handler():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    return stream, handler


def test_filter_redacts_message_args_and_traceback():
    stream, handler = _handler()
    log = logging.getLogger("tests.unit.test_logs.filter")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("loaded %s with token %s", {"private_key": PEM}, TOKEN)
        log.info(f"header Authorization: Bearer {TOKEN[5:]}")
        try:
            raise ValueError(f"credentials {json.dumps({'client_secret': 'SECRETinTRACEBACK'})}")
        except ValueError:
            log.exception("could not refresh %s", "the token")
        log.warning("stack", stack_info=True, extra={"x": TOKEN})
        log.warning("%s %s", "not enough args")  # a bad format still comes out, redacted
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert secret_free(out, "MIIEvQIBAD", "SECRETtokenVALUE", "SECRETinTRACEBACK"), out
    assert "loaded {'private_key': '[REDACTED]'} with token [REDACTED]" in out
    assert "Traceback" in out and "could not refresh the token" in out
    assert "not enough args" in out


def test_configure_installs_the_filter_on_the_root_handlers(monkeypatch):
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", root.level)
    logs.configure({})
    logs.configure({})  # idempotent: one filter
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    logging.getLogger("pipeline.somewhere").warning("token %s", TOKEN)
    assert "token [REDACTED]" in stream.getvalue()
    assert "SECRETtokenVALUE" not in stream.getvalue()


# --- the level --------------------------------------------------------------------------------


@pytest.mark.parametrize("value, level, everything", [
    (None, logging.INFO, False), ("", logging.INFO, False), ("INFO", logging.INFO, False),
    ("DEBUG", logging.DEBUG, False), ("debug", logging.DEBUG, False),
    ("WARNING", logging.WARNING, False), ("DEBUG-ALL", logging.DEBUG, True),
    (" debug-all ", logging.DEBUG, True),
])
def test_level_setting(value, level, everything):
    env = {} if value is None else {logs.LEVEL_ENV: value}
    assert level_setting(env) == (level, everything, None)


def test_an_unknown_level_is_warned_about_and_read_as_info():
    level, everything, warning = level_setting({logs.LEVEL_ENV: "LOUD"})
    assert (level, everything) == (logging.INFO, False)
    assert "DATASTORE_MAPPER_LOG_LEVEL='LOUD' is not a log level" in warning
    assert "DEBUG, INFO, WARNING or DEBUG-ALL" in warning


@pytest.fixture
def saved_levels(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])
    names = ["", *logs.THIRD_PARTY, "pipeline", logs._WORKER_LOGGER]
    saved = {n: logging.getLogger(n).level for n in names}
    filters = list(logging.getLogger(logs._WORKER_LOGGER).filters)
    yield
    for n, lvl in saved.items():
        logging.getLogger(n).setLevel(lvl)
    logging.getLogger(logs._WORKER_LOGGER).filters[:] = filters


@pytest.mark.parametrize("value, ours, theirs", [
    ("DEBUG", logging.DEBUG, logging.WARNING),
    ("INFO", logging.INFO, logging.WARNING),
    ("WARNING", logging.WARNING, logging.WARNING),
    ("DEBUG-ALL", logging.DEBUG, logging.DEBUG),
])
def test_configure_levels(saved_levels, value, ours, theirs):
    logs.configure({logs.LEVEL_ENV: value})
    assert logging.getLogger("pipeline.launch.cli").getEffectiveLevel() == ours
    assert logging.getLogger("jobs.count_keys").getEffectiveLevel() == ours
    for name in ("apache_beam.runners", "google.auth", "urllib3.connectionpool", "grpc._channel"):
        assert logging.getLogger(name).getEffectiveLevel() == theirs, name
    worker = logging.getLogger(logs._WORKER_LOGGER)
    assert [f.keep_all for f in worker.filters if isinstance(f, WorkerLogFilter)] == [
        value == "DEBUG-ALL"]


# --- worker lines -----------------------------------------------------------------------------


def _worker_record(entry: str, level=logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(logs._WORKER_LOGGER, level, __file__, 1, "Worker: %s", (entry,),
                             None)


def _entry(message: str, location: str = "/app/pipeline/graph/namespaces.py:61") -> str:
    # What the local runner logs: str(LogEntry) with its newlines replaced by spaces.
    return (f'severity: INFO timestamp {{   seconds: 1764586471   nanos: 785000000 }} '
            f'message: "{message}" thread: "Thread-14" instruction_id: "bundle_3" '
            f'transform_id: "Mapper/SplitNamespaces" log_location: "{location}" ')


@pytest.mark.parametrize("escaped, expected", [
    ("namespace \\303\\274ber: 1 ranges from 13 samples",  # octal escapes (older protobuf)
     "namespace über: 1 ranges from 13 samples"),
    ("namespace über: 1 ranges from 13 samples", "namespace über: 1 ranges from 13 samples"),
    ("namespace \\343\\203\\207\\343\\203\\274\\343\\202\\277: 4 ranges",
     "namespace データ: 4 ranges"),
    ("namespace データ: 4 ranges", "namespace データ: 4 ranges"),
    ("mixed über and \\303\\274ber, データ", "mixed über and über, データ"),
    ('quoted \\"acme\\" and a back\\\\slash, \\303\\244', 'quoted "acme" and a back\\slash, ä'),
    ("progress: acme 1,200 entities (\\342\\206\\222 310/s)", "progress: acme 1,200 entities (→ 310/s)"),
], ids=["octal-uber", "raw-uber", "octal-data", "raw-data", "mixed", "quotes", "arrow"])
def test_worker_log_filter_keeps_non_ascii_intact(escaped, expected):
    record = _worker_record(_entry(escaped))
    assert WorkerLogFilter().filter(record)
    assert record.getMessage() == f"worker: {expected}"


def test_worker_log_filter_drops_beams_info_but_keeps_ours_and_warnings():
    beam = _entry("Creating state cache with size 104857600",
                  "/venv/apache_beam/runners/worker/sdk_worker.py:171")
    assert not WorkerLogFilter().filter(_worker_record(beam))
    assert WorkerLogFilter(keep_all=True).filter(_worker_record(beam))
    warning = _worker_record(beam.replace("INFO", "WARNING"), logging.WARNING)
    assert WorkerLogFilter().filter(warning)
    noise = _entry("Discarding unparseable args: semi_persistent_directory")
    assert not WorkerLogFilter(keep_all=True).filter(_worker_record(noise))
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "job %s", ("count_keys",), None)
    assert WorkerLogFilter().filter(plain) and plain.getMessage() == "job count_keys"


def test_worker_log_filter_drops_a_workers_own_ctrl_c():
    text = ("Python sdk harness failed: \\nTraceback (most recent call last):\\n  File "
            "\\\"/venv/apache_beam/runners/worker/sdk_worker_main.py\\\", line 250, in main\\n"
            "    sdk_harness.run()\\nKeyboardInterrupt\\n")
    entry = _entry(text, "/venv/apache_beam/runners/worker/sdk_worker_main.py:262")
    record = _worker_record(entry.replace("INFO", "CRITICAL"), logging.CRITICAL)
    assert not WorkerLogFilter().filter(record)
    other = _entry("Python sdk harness failed: \\nTraceback ...\\nMemoryError\\n")
    assert WorkerLogFilter().filter(_worker_record(other, logging.CRITICAL))


def test_after_an_interruption_beams_records_are_dropped():
    f = logs.InterruptedFilter()
    beam = logging.LogRecord("apache_beam.runners.worker.data_plane", logging.ERROR, __file__,
                             1, "Failed to read inputs in the data plane.", (), None)
    ours = logging.LogRecord("pipeline.launch.cli", logging.WARNING, __file__, 1, "x", (), None)
    try:
        assert f.filter(beam) and f.filter(ours)
        logs.interrupted()
        assert not f.filter(beam) and f.filter(ours)
    finally:
        logs.interrupted(False)
    assert f.filter(beam)
