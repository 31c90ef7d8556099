"""Logs: key=value lines, secrets redacted wherever they appear, the verdict line format."""

import io
import logging

from monitoring.core.logs import KV, REDACTOR, configure_logging, register_secret, verdict_line


def test_secrets_never_reach_the_log(monkeypatch):
    access_key = "mkey0123456789abcdef"
    api_key = "apikey.ZXCVBNMASDFGHJKL"
    monkeypatch.setenv("CDSW_APIV2_KEY", api_key)
    stream = io.StringIO()
    log = configure_logging("test", stream=stream)
    register_secret(access_key)
    log.info("calling model %s", KV(access_key=access_key))
    log.info("header Authorization: Bearer %s", "tok-abcdef123456")
    log.info('body {"accessKey": "%s", "request": {}}', access_key)
    log.info("api key is %s", api_key)
    try:
        raise RuntimeError(f"refused key {access_key}")
    except RuntimeError:
        log.exception("failure")
    out = stream.getvalue()
    assert access_key not in out and api_key not in out and "tok-abcdef123456" not in out
    assert out.count("***") >= 5


def test_kv_quotes_values_with_spaces():
    assert str(KV(a=1, b="two words", c=None, d="")) == 'a=1 b="two words" d=""'


def test_verdict_line_shape():
    line = verdict_line("redeploy", "deployed", "deployed v2", "none", model="m", version="v2")
    assert line == "VERDICT job=redeploy status=deployed model=m version=v2 action=none -- deployed v2"


def test_configure_logging_replaces_handlers():
    configure_logging("a", stream=io.StringIO())
    configure_logging("b", stream=io.StringIO())
    assert len(logging.getLogger().handlers) == 1
    REDACTOR.secrets.discard("mkey0123456789abcdef")


def test_one_list_of_secret_key_names_serves_the_log_lines_and_the_field_filters():
    """The key=value redaction and ``names_a_secret`` (the MLflow field filter) name the same keys."""
    from cmlbase.logs import Redactor, names_a_secret

    redact = Redactor()
    for key in ("api_key", "api-key", "accessKey", "CML_API_KEY", "DB_PASSWD", "password", "credential", "token"):
        assert names_a_secret(key), key
        assert redact(f"{key}=abcd1234") == f"{key}=***", key
    for key in ("rows", "strategy", "model_path", "trainer"):
        assert not names_a_secret(key), key
        assert redact(f"{key}=abcd1234") == f"{key}=abcd1234", key
