"""`stack up` warns about ports the kernel may hand to outgoing connections."""

from services.devtools.stack.common import ephemeral_port_warnings

PORTS = {"VOTE_LEDGER_KAFKA_PORT": 19092, "VOTE_LEDGER_KAFKA_CONTROLLER_PORT": 40000, "VOTE_LEDGER_PG_PORT": 60999}


def test_a_port_inside_the_ephemeral_range_is_warned_about_naming_its_variable_and_the_range():
    warnings = ephemeral_port_warnings(PORTS, (32768, 60999))
    assert [w.split(" ", 1)[0] for w in warnings] == [
        "VOTE_LEDGER_KAFKA_CONTROLLER_PORT=40000",
        "VOTE_LEDGER_PG_PORT=60999",
    ]
    assert all("ephemeral port range 32768-60999" in w for w in warnings)


def test_ports_outside_the_range_or_an_unknown_range_give_no_warning():
    assert ephemeral_port_warnings(PORTS, (61000, 65535)) == []
    assert ephemeral_port_warnings(PORTS, None) == []
