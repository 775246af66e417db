"""The fault matrix's score (testkit/faults.py): which failed requests belong to a TF Serving outage."""

from __future__ import annotations

from testkit.faults import score
from testkit.faultworld import Trial
from testkit.harness import Samples

KILLED, LAUNCHED = 10.0, 12.0


def _restart_trial() -> Trial:
    return Trial("tfs_restart", 2, started=5.0, ended=30.0, outage=(KILLED, LAUNCHED))


def _samples(*rows: tuple[float, float, int, str]) -> Samples:
    """(start, latency, version or -1, code of a failure) rows, as the load generator writes them."""
    return Samples.of(
        {
            "samples": [(s, lat, v) for s, lat, v, _ in rows],
            "failures": [(s, code) for s, _, v, code in rows if v < 0],
        }
    )


def test_refused_requests_until_the_first_answer_after_the_restart_are_the_outages() -> None:
    """UNAVAILABLE from the kill until the restarted server first answers (the channel's reconnect backoff
    runs past the launch) is excused; the span ends at that answer."""
    trial = _restart_trial()
    samples = _samples(
        (9.0, 0.01, 1, ""),
        (10.5, 0.01, -1, "UNAVAILABLE"),
        (12.5, 0.01, -1, "UNAVAILABLE"),  # launched, channel still backing off
        (13.0, 0.02, 2, ""),  # the first answer: back at 13.02
        (14.0, 0.01, -1, "UNAVAILABLE"),  # after the first answer: a failure of its own
    )
    between = score([trial], samples, {1: 0.0, 2: 0.0})
    assert trial.outage == (KILLED, 13.02)
    assert (trial.failed_in_outage, trial.failed) == (2, 1)
    assert [code for _, _, code in trial.failures] == ["UNAVAILABLE"]
    assert between["failed"] == 0


def test_any_other_error_while_the_server_is_down_counts() -> None:
    """The restarted server's own error (say NOT_FOUND before the model is back) is not the outage's."""
    trial = _restart_trial()
    samples = _samples((11.0, 0.01, -1, "NOT_FOUND"), (12.5, 0.01, -1, "UNAVAILABLE"), (13.0, 0.01, 2, ""))
    score([trial], samples, {2: 0.0})
    assert (trial.failed_in_outage, trial.failed) == (1, 1)
    assert trial.failures[0][2] == "NOT_FOUND"


def test_a_request_in_flight_at_the_kill_is_the_outages_whatever_its_code() -> None:
    trial = _restart_trial()
    samples = _samples((9.99, 0.05, -1, "UNKNOWN"), (13.0, 0.01, 2, ""))
    score([trial], samples, {2: 0.0})
    assert (trial.failed_in_outage, trial.failed) == (1, 0)


def test_without_an_outage_unavailable_counts_like_any_failure() -> None:
    trial = Trial("bucket_5xx", 2, started=5.0, ended=30.0)
    score([trial], _samples((11.0, 0.01, -1, "UNAVAILABLE"), (12.0, 0.01, 1, "")), {1: 0.0})
    assert (trial.failed_in_outage, trial.failed) == (0, 1)


def test_a_load_file_without_failure_codes_still_reads() -> None:
    """An older load file (samples only) reads with code "?": nothing is excused, nothing breaks."""
    samples = Samples.of({"samples": [(1.0, 0.1, -1), (2.0, 0.1, 3)]})
    assert samples.code.tolist() == ["?", ""]


def test_overlapping_outages_count_each_failure_once() -> None:
    """A client still reconnecting after one kill meets the next trial's kill: each refused request counts
    once, in the trial it started in."""
    first = Trial("tfs_restart", 2, started=5.0, ended=20.0, outage=(10.0, 12.0))
    second = Trial("tfs_restart", 3, started=20.0, ended=40.0, outage=(22.0, 25.0))
    samples = _samples(
        (11.0, 0.01, -1, "UNAVAILABLE"),
        (15.0, 0.01, -1, "UNAVAILABLE"),  # first restarted at 12, the channel still backing off
        (21.0, 0.01, -1, "UNAVAILABLE"),
        (23.0, 0.01, -1, "UNAVAILABLE"),
        (26.0, 0.01, 3, ""),  # the first answer after both
    )
    score([first, second], samples, {3: 0.0})
    assert (first.failed_in_outage, second.failed_in_outage) == (2, 2)
    assert first.failed == second.failed == 0
