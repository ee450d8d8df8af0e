"""Several broker nodes behind one AMQP_URL: parsing, the order nodes are tried in, and
the quorum group size asked for."""

from __future__ import annotations

import pytest

from shared.messaging import quorum
from shared.messaging.broker_nodes import NodeChooser, broker_urls, connect_first, redact
from shared.settings import load_settings

A, B, C = (f"amqp://u:p@h{i}:5672/%2F" for i in (1, 2, 3))


def test_the_nodes_are_split_on_semicolons_in_order():
    assert broker_urls(f"{A}; {B};{C};") == [A, B, C]
    assert broker_urls(A) == [A]
    with pytest.raises(ValueError):
        broker_urls(" ; ")


def test_a_reconnect_tries_the_node_it_left_last():
    chooser = NodeChooser()
    first = chooser.order([A, B, C], "relay")
    chooser.used("relay", first[0])
    again = chooser.order([A, B, C], "relay")
    assert again[-1] == first[0] and sorted(again) == [A, B, C]
    # The node is suspect for every connection of the process, not only the one that left.
    assert chooser.order([A, B, C], "consumer")[-1] == first[0]


def test_connect_first_skips_refusing_nodes_and_raises_the_last_error_when_all_refuse():
    tried = []

    def connect_one(url):
        tried.append(url)
        if url != C:
            raise ConnectionRefusedError(url)
        return f"connection to {url}"

    chooser = NodeChooser()
    assert connect_first(f"{A};{B};{C}", "x", connect_one, (OSError,), chooser) == f"connection to {C}"
    assert set(tried) >= {C}
    with pytest.raises(ConnectionRefusedError):
        connect_first(f"{A};{B}", "y", connect_one, (OSError,), NodeChooser())


def test_an_unexpected_error_is_not_taken_for_a_node_down():
    def connect_one(url):
        raise KeyError(url)

    with pytest.raises(KeyError):
        connect_first(f"{A};{B}", "z", connect_one, (OSError,), NodeChooser())


def test_redacted_urls_carry_no_credentials():
    assert redact(A) == "amqp://h1:5672/%2F"


@pytest.mark.parametrize(("url", "configured", "expected"), [
    (A, 3, None),  # one broker: no argument, existing queues redeclare unchanged
    (f"{A};{B};{C}", 3, 3),
    (f"{A};{B}", 3, 2),  # capped by the nodes listed
    (f"{A};{B};{C}", 1, None),
])
def test_the_quorum_group_size(url, configured, expected):
    assert quorum.initial_group_size(url, configured) == expected
    assert quorum.group_size_args(expected) == ({} if expected is None else
                                                {"x-quorum-initial-group-size": expected})


def test_settings_accept_a_node_list_and_refuse_a_bad_member(monkeypatch):
    monkeypatch.setenv("APP_ENV", "development")
    assert load_settings(amqp_url=f"{A};{B}").amqp_url == f"{A};{B}"
    with pytest.raises(Exception, match="AMQP_URL"):
        load_settings(amqp_url=f"{A};http://nope")
