"""The relay's baseline: a raw pipelined publish-with-confirms loop to a quorum queue.

pika's BlockingConnection waits for each confirm before the next publish, so a pipelined
loop needs the asynchronous SelectConnection: up to ``window`` messages are in flight, and
each confirm (``multiple`` acks included) lets more out.
"""

from __future__ import annotations

import collections
import time
import uuid

import pika
from pika.spec import Basic

from bench.environment import BenchEnv


class PipelinedPublisher:
    def __init__(self, params: pika.URLParameters, queue: str, bodies: list[bytes],
                 window: int, declare: bool = True, message_type: str | None = None) -> None:
        """Publish every body to ``queue`` (through the default exchange), declaring it a
        quorum queue first if ``declare``."""
        self.params = params
        self.queue = queue
        self.bodies = bodies
        self.total = len(bodies)
        self.window = window
        self.declare = declare
        self.message_type = message_type
        self.sent = 0
        self.acked = 0
        self.nacked = 0
        self.returned = 0
        self.max_in_flight = 0
        self.outstanding: collections.deque[int] = collections.deque()
        self.singly_confirmed: dict[int, bool] = {}
        self.started = 0.0
        self.finished = 0.0
        self.error: str | None = None

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

        def confirm_mode(_frame: object = None) -> None:
            channel.confirm_delivery(ack_nack_callback=self._on_confirm,
                                     callback=self._on_confirm_mode)

        if self.declare:
            channel.queue_declare(self.queue, durable=True,
                                  arguments={"x-queue-type": "quorum"}, callback=confirm_mode)
        else:
            confirm_mode()

    def _on_confirm_mode(self, _frame: object) -> None:
        self.started = time.perf_counter()
        self._fill()

    def _fill(self) -> None:
        # Bounded in-flight window: never more than `window` unconfirmed publishes.
        while self.sent < self.total and len(self.outstanding) < self.window:
            properties = pika.BasicProperties(
                delivery_mode=2, content_type="application/json", type=self.message_type,
                message_id=str(uuid.uuid4()))
            self.channel.basic_publish("", self.queue, self.bodies[self.sent], properties,
                                       mandatory=True)
            self.sent += 1
            self.outstanding.append(self.sent)  # delivery tags count from 1 per channel
        self.max_in_flight = max(self.max_in_flight, len(self.outstanding))

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


def publish_all(env: BenchEnv, queue: str, bodies: list[bytes], *, declare: bool,
                message_type: str | None = None, window: int = 1000) -> float:
    """Publish ``bodies`` to ``queue`` with confirms, pipelined; returns messages per
    second from the first publish to the last confirm."""
    params = pika.URLParameters(env.settings.amqp_url)
    params.client_properties = {"connection_name": "bench pipelined publish"}
    pub = PipelinedPublisher(params, queue, bodies, window, declare, message_type)
    pub.run(timeout_s=120)
    if pub.nacked or pub.returned or pub.acked != len(bodies):
        raise RuntimeError(f"{pub.nacked} nacked, {pub.returned} returned, {pub.acked}"
                           f" confirmed of {len(bodies)}")
    return pub.acked / (pub.finished - pub.started)


def publish_rate(env: BenchEnv, total: int, body: bytes, window: int = 1000) -> float:
    """The raw baseline: ``total`` copies of ``body`` to a fresh quorum queue."""
    queue = f"{env.settings.broker_namespace}.bench-raw"
    env.extra_queues.append(queue)  # removed with the namespace at the end of the run
    return publish_all(env, queue, [body] * total, declare=True, window=window)
