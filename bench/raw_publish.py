"""The relay's baseline: a raw pipelined publish-with-confirms loop to a quorum queue.

pika's BlockingConnection waits for each confirm before the next publish, so a pipelined
loop needs the asynchronous SelectConnection: up to ``window`` messages are in flight, and
each confirm (``multiple`` acks included) lets more out.
"""

from __future__ import annotations

import collections
import time

import pika
from pika.spec import Basic

from bench.environment import BenchEnv


class PipelinedPublisher:
    def __init__(self, params: pika.URLParameters, queue: str, body: bytes, total: int,
                 window: int) -> None:
        self.params = params
        self.queue = queue
        self.body = body
        self.total = total
        self.window = window
        self.sent = 0
        self.acked = 0
        self.nacked = 0
        self.returned = 0
        self.outstanding: collections.deque[int] = collections.deque()
        self.singly_confirmed: dict[int, bool] = {}
        self.started = 0.0
        self.finished = 0.0
        self.error: str | None = None
        self.properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")

    def run(self, timeout_s: float) -> None:
        self.connection = pika.SelectConnection(
            self.params, on_open_callback=self._on_open,
            on_open_error_callback=self._on_error, on_close_callback=self._on_closed)
        self.connection.ioloop.call_later(timeout_s, self._on_timeout)
        self.connection.ioloop.start()
        if self.error:
            raise RuntimeError(self.error)

    def _on_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_error(self, _connection: object, exc: BaseException) -> None:
        self.error = f"connection failed: {exc}"
        self.connection.ioloop.stop()

    def _on_closed(self, _connection: object, _reason: BaseException) -> None:
        self.connection.ioloop.stop()

    def _on_timeout(self) -> None:
        self.error = f"timed out with {self.acked}/{self.total} confirmed"
        self.connection.close()

    def _on_channel(self, channel: pika.channel.Channel) -> None:
        self.channel = channel
        channel.add_on_return_callback(self._on_return)
        channel.queue_declare(self.queue, durable=True, arguments={"x-queue-type": "quorum"},
                              callback=lambda _frame: channel.confirm_delivery(
                                  ack_nack_callback=self._on_confirm,
                                  callback=self._on_confirm_mode))

    def _on_confirm_mode(self, _frame: object) -> None:
        self.started = time.perf_counter()
        self._fill()

    def _fill(self) -> None:
        # Bounded in-flight window: never more than `window` unconfirmed publishes.
        while self.sent < self.total and len(self.outstanding) < self.window:
            self.channel.basic_publish("", self.queue, self.body, self.properties,
                                       mandatory=True)
            self.sent += 1
            self.outstanding.append(self.sent)  # delivery tags count from 1 per channel

    def _on_return(self, *_args: object) -> None:
        self.returned += 1

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        method = frame.method
        tag = method.delivery_tag
        if method.multiple:
            while self.outstanding and self.outstanding[0] <= tag:
                self._settle(isinstance(method, Basic.Ack))
        else:  # confirms may settle out of order: hold them until the oldest is settled
            self.singly_confirmed[tag] = isinstance(method, Basic.Ack)
            while self.outstanding and self.outstanding[0] in self.singly_confirmed:
                self._settle(self.singly_confirmed.pop(self.outstanding[0]))
        if self.acked + self.nacked >= self.total:
            self.finished = time.perf_counter()
            self.connection.close()
        else:
            self._fill()

    def _settle(self, ok: bool) -> None:
        self.outstanding.popleft()
        if ok:
            self.acked += 1
        else:
            self.nacked += 1


def publish_rate(env: BenchEnv, total: int, body: bytes, window: int = 1000) -> float:
    """Messages per second, first publish to last confirm, to a fresh quorum queue."""
    queue = f"{env.settings.broker_namespace}.bench-raw"
    env.extra_queues.append(queue)  # removed with the namespace at the end of the run
    params = pika.URLParameters(env.settings.amqp_url)
    params.client_properties = {"connection_name": "bench raw publish"}
    pub = PipelinedPublisher(params, queue, body, total, window)
    pub.run(timeout_s=120)
    if pub.nacked or pub.returned:
        raise RuntimeError(f"{pub.nacked} nacked, {pub.returned} returned of {total}")
    return pub.acked / (pub.finished - pub.started)
