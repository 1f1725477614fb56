"""The shared HTTP layer: pacing, Retry-After and call counting."""

from __future__ import annotations

import threading

import requests

from sync.http import CallCounter, Pacer, parse_retry_after


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def answer(remaining: str) -> requests.Response:
    response = requests.Response()
    response.headers["X-RateLimit-Remaining"] = remaining
    return response


def test_a_full_budget_costs_no_wait():
    clock = FakeClock()
    pacer = Pacer(sleep=clock.sleep, clock=clock)
    pacer.after_response(answer("100"))

    for _ in range(10):
        pacer.before_request()

    assert clock.now == 100.0


def test_a_low_budget_spaces_requests_one_refill_apart():
    clock = FakeClock()
    waits: list[float] = []
    pacer = Pacer(sleep=waits.append, clock=clock)
    pacer.after_response(answer("3"))

    for _ in range(4):
        pacer.before_request()

    # Nobody sleeps on a stopped clock but the later callers, each one slot more.
    assert waits == [1.0, 2.0, 3.0]


def test_threads_share_one_spacing():
    clock = FakeClock()
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    pacer = Pacer(sleep=record, clock=clock)
    pacer.after_response(answer("0"))
    threads = [threading.Thread(target=pacer.before_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_a_refilled_budget_lifts_the_spacing():
    clock = FakeClock()
    waits: list[float] = []
    pacer = Pacer(sleep=waits.append, clock=clock)
    pacer.after_response(answer("1"))
    pacer.before_request()
    pacer.after_response(answer("90"))

    pacer.before_request()

    assert waits == []


def test_retry_after_reads_seconds_and_dates_and_caps_them():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("100000") == 120.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


def test_calls_are_counted_by_service_method_and_route():
    counter = CallCounter()
    counter.add("alga", "GET", "/clients", 200)
    counter.add("alga", "GET", "/clients", 200)
    counter.add("alga", "POST", "/clients", 409)
    counter.add("acronis", "POST", "/idp/token", 200)

    assert counter.by_method() == {
        "acronis": {"POST": 1},
        "alga": {"GET": 2, "POST": 1},
    }
    assert counter.by_route()["alga POST /clients 409"] == 1
    assert counter.total() == 4
    assert counter.total(writes_only=True) == 2
