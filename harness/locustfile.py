"""Locust user for the reference app: create, read (cache in front of the DB) and list orders.

Loaded only by the Locust worker process (`harness.load` starts it), never imported by the
harness: importing locust monkey-patches the whole process with gevent (docs/recipes.md, section 5).
Throughput per user comes from CHAOSDRILL_THROUGHPUT so the load stays bounded.
"""

import os
import random
import time

from locust import HttpUser, constant_throughput, events, task

# O_APPEND, written in whole lines: several Locust processes (a master's workers) share one log
# without tearing a line, and the harness's stop conditions read it while the run goes on.
_fd = os.open(os.environ["CHAOSDRILL_REQUEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) \
    if os.environ.get("CHAOSDRILL_REQUEST_LOG") else None
_pending: list[str] = []
_last_flush = time.monotonic()
FLUSH_EVERY_S = 0.05  # a stop condition on the load sees a request at most this late


def _flush_pending() -> None:
    global _last_flush
    _last_flush = time.monotonic()
    if _pending and _fd is not None:
        data = "".join(_pending).encode()
        _pending.clear()
        while data:
            data = data[os.write(_fd, data):]


@events.request.add_listener
def _on_request(request_type, name, response_time, exception=None, **_kw) -> None:
    """One line per request on the run's clock (CLOCK_MONOTONIC is shared across processes):
    start t_ns, ok, latency ms — so load errors fall in exact before/during/after windows."""
    if _fd is not None:
        start_ns = time.monotonic_ns() - int(response_time * 1e6)
        _pending.append(f"{start_ns},{0 if exception else 1},{response_time:.3f},{request_type} {name}\n")
        if time.monotonic() - _last_flush >= FLUSH_EVERY_S or len(_pending) >= 256:
            _flush_pending()


@events.quitting.add_listener
def _flush(**_kw) -> None:
    _flush_pending()


class OrdersUser(HttpUser):
    wait_time = constant_throughput(float(os.environ.get("CHAOSDRILL_THROUGHPUT", "5")))

    def on_start(self) -> None:
        self.known_ids: list[int] = []

    @task(1)
    def create_order(self) -> None:
        body = {"customer": f"user-{random.randint(1, 1000)}", "item": random.choice(["book", "pen", "lamp"]),
                "quantity": random.randint(1, 5), "amount": f"{random.uniform(1, 500):.2f}"}
        with self.client.post("/orders", json=body, name="/orders", catch_response=True) as response:
            if response.status_code == 201:
                self.known_ids.append(response.json()["id"])
                self.known_ids = self.known_ids[-100:]
            else:
                response.failure(f"HTTP {response.status_code}")

    @task(3)
    def read_order(self) -> None:
        if not self.known_ids:
            return
        self.client.get(f"/orders/{random.choice(self.known_ids)}", name="/orders/{id}")

    @task(1)
    def list_orders(self) -> None:
        self.client.get("/orders?limit=10", name="/orders?limit")
