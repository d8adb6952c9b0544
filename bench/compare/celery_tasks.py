"""The Celery side of bench/compare: one task that sleeps ms / 1000 s with
time.sleep (the stand-in for network I/O). The worker counts the tasks it
finished; when it has $BENCH_JOBS, it writes "<first start> <last end>"
(CLOCK_MONOTONIC seconds) to $BENCH_RESULT. Broker: $BENCH_BROKER_URL;
no result backend."""
import os
import threading
import time

from celery import Celery

app = Celery("celery_tasks", broker=os.environ["BENCH_BROKER_URL"])
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False

_lock = threading.Lock()
_state = {"done": 0, "first": None}


@app.task(name="sleep")
def sleep(ms):
    with _lock:
        if _state["first"] is None:
            _state["first"] = time.monotonic()
    time.sleep(ms / 1000.0)
    now = time.monotonic()
    with _lock:
        _state["done"] += 1
        if _state["done"] == int(os.environ["BENCH_JOBS"]):
            with open(os.environ["BENCH_RESULT"], "w") as f:
                f.write(f"{_state['first']} {now}\n")


if __name__ == "__main__":
    # Enqueue: $BENCH_JOBS tasks of 20 ms, one publish each (Celery's API),
    # over one connection.
    with app.producer_or_acquire() as producer:
        for _ in range(int(os.environ["BENCH_JOBS"])):
            sleep.apply_async((20,), producer=producer)
