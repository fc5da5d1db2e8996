"""Secrets never reach a log, an event, a tick error or the UI: everything the instance stored, and
everything the process printed, is searched for them after the error paths that used to leak."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from dagster._utils.error import serializable_error_info_from_exc_info

from taxi_assets.defs.alerts import AlertDeliveryError, AlertWebhook, run_failure_alert
from taxi_assets.storage.redaction import redact

from taxi_assets_tests.conftest import make_pipeline

PASSWORD = "Pw-7f3e9c1a-secret"
TOKEN = "T0SECRET/B0SECRET/xoxTokenSecret42"


def stored_text(root: Path) -> bytes:
    """Every byte the instance wrote: run and event storage (SQLite), compute logs, schedules."""
    return b"\n".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "url",
    [
        f"bob:{PASSWORD}@127.0.0.1/ny_taxi",  # no scheme: libpq quotes the whole string back
        f"postgresql://bob:{PASSWORD}@127.0.0.1:notaport/ny_taxi",
        f"postgresql://bob:{PASSWORD}@127.0.0.1:1/ny_taxi",  # nothing listens there
    ],
)
def test_a_bad_postgres_url_never_reaches_the_instance_or_the_terminal(tmp_path, mirror, capfd, monkeypatch, url):
    monkeypatch.setenv("TAXI_POSTGRES_URL", url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        pipeline = make_pipeline(tmp_path, mirror, instance, TAXI_WAREHOUSE="postgres", TAXI_POSTGRES_URL=url)
        result = pipeline.run("zones", raise_on_error=False)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        alert = run_failure_alert(instance, run, None)
    # the alert leads with the cause, not Dagster's wrapper
    assert "cannot connect to the Postgres warehouse" in alert.error, alert.error
    printed = capfd.readouterr()
    for haystack in (stored_text(home), printed.out.encode(), printed.err.encode(), alert.error.encode()):
        assert PASSWORD.encode() not in haystack
        assert url.encode() not in haystack


def test_a_failing_webhook_keeps_its_url_out_of_tick_errors():
    """What the daemon stores for a sensor tick that raised: the serialized error, with its chain."""
    for url in (f"http://127.0.0.1:1/services/{TOKEN}", f"http://no-such-host.invalid/services/{TOKEN}"):
        with pytest.raises(AlertDeliveryError) as err:
            AlertWebhook(url=url, timeout_seconds=2).post(_alert())
        info = serializable_error_info_from_exc_info((err.type, err.value, err.tb))
        assert TOKEN not in serialize_value(info) and TOKEN not in info.to_string()
        assert "TAXI_ALERT_WEBHOOK_URL" in str(err.value)


def test_a_webhook_answering_an_error_status_keeps_its_url_out(receiver_404):
    with pytest.raises(AlertDeliveryError, match="HTTP 404") as err:
        AlertWebhook(url=f"{receiver_404}/services/{TOKEN}").post(_alert())
    info = serializable_error_info_from_exc_info((err.type, err.value, err.tb))
    assert TOKEN not in serialize_value(info)


def test_redact_masks_passwords_in_urls_and_key_value_strings():
    text = f'missing "=" after "postgresql://bob:{PASSWORD}@db/x" in host=db password={PASSWORD} port=5'
    out = redact(text)
    assert PASSWORD not in out and "bob:***@db" in out and "password=***" in out
    assert redact(f"token {TOKEN} here", [TOKEN]) == "token *** here"


@pytest.fixture
def receiver_404():
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _alert():
    from taxi_assets.defs.alerts import Alert

    return Alert(kind="run failed", run_id="r" * 32, job="yellow_monthly", assets=[], partition=None, error="boom", title="t")

