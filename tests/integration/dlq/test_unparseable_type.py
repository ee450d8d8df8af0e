"""A dead letter whose body does not parse still says what it was: the listing, ``show``
and the groups take its type from the routing key it was published with."""

from __future__ import annotations

import json

from tests.integration.dlq.builders import issued


def test_an_unparseable_body_is_listed_shown_and_grouped_by_its_routing_key(
    cli, broker, topology
):
    garbage = broker.park(b"not json {", reason="poison", routing_key="TokenIssued",
                          exception="ValidationError: invalid JSON", message_id="garbage-1")
    typeless = broker.park(b'{"token_id": "x"}', reason="poison", routing_key="TokenRedeemed",
                           exception="ValidationError: type missing", message_id="typeless-1")
    broker.park(issued(), reason="poison", exception="ValidationError: invalid JSON")

    listing = json.loads(cli("list", "--json").stdout)["messages"]
    by_id = {row["id"]: row for row in listing}
    assert by_id[garbage]["type"] == "TokenIssued"
    assert by_id[typeless]["type"] == "TokenRedeemed"

    table = cli("list").stdout
    row = next(line for line in table.splitlines() if line.startswith(garbage))
    assert row.split()[1] == "TokenIssued"
    assert "?" not in row.split()[1]

    shown = cli("show", garbage, "--json")
    assert shown.exit_code == 0, shown.output
    assert '"type": "TokenIssued"' in shown.stdout
    assert cli("show", garbage).stdout.count("TokenIssued") >= 2  # type and routing key

    groups = json.loads(cli("list", "--group", "--json").stdout)["groups"]
    assert {"type": "TokenIssued", "exception_type": "ValidationError", "reason": "poison",
            "count": 2} in groups
    assert {"type": "TokenRedeemed", "exception_type": "ValidationError", "reason": "poison",
            "count": 1} in groups
