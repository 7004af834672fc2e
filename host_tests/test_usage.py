"""One code for usage errors across all subcommands (2), each with its own usage line;
node ids checked as the contract defines them before anything waits; --broker HOST means
the default port everywhere."""

import re

import pytest

from streetnode import cli
from streetnode.common import nodeid, options


def _subcommands():
    out = []
    for parser in options.walk(cli.build_parser()):
        if parser.prog != "streetnode":
            out.append(parser.prog[len("streetnode "):])
    return out


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_refuses_a_bad_option_with_exit_2_and_its_own_usage(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(command.split() + ["--no-such-option"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("usage: streetnode %s " % command) or err.startswith("usage: streetnode %s\n" % command), err


def _run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv,usage,says", [
    (["monitor", "--broker", "127.0.0.1:1", "--interval", "-1"], "monitor", "must be more than 0"),
    (["monitor", "--broker", "127.0.0.1:1", "--duration", "0"], "monitor", "must be more than 0"),
    (["monitor", "--broker", "127.0.0.1:1", "--stuck-n", "x"], "monitor", "not a whole number"),
    (["monitor", "--broker", "127.0.0.1:port"], "monitor", "--broker must be HOST:PORT"),
    (["check", "Lamp-0042", "--broker", "127.0.0.1:1"], "check", "ids are lowercase, did you mean lamp-0042?"),
    (["check", "lamp-1", "--broker", "127.0.0.1:1", "--readings", "2"], "check", "--readings must be at least 3"),
    (["check", "lamp-1", "--broker", "127.0.0.1:1", "--cert", "c.pem"], "check", "--cert and --key go together"),
    (["report", "--out", "x"], "report", "give either --capture FILE"),
    (["report", "--capture", "c.jsonl", "--since", "yesterday"], "report", "not a time"),
    (["bridge", "--broker", "127.0.0.1:1"], "bridge", "--to"),
    (["deploy", "--broker", "h:99999", "--port", "/dev/null", "--config", "c.json"], "deploy", "--broker must be"),
])  # fmt: skip
def test_usage_errors_exit_2_with_that_subcommands_usage(argv, usage, says, capsys):
    code, err = _run(argv, capsys)
    assert code == 2, err
    assert "usage: streetnode %s" % usage in err, err
    assert says in err, err


def test_node_ids_are_checked_as_the_contract_defines_them():
    assert nodeid.check("lamp-0042") == "lamp-0042"
    for bad, says in [("Lamp-0042", "ids are lowercase"), ("lamp_1", "did you mean lamp-1"), ("", "1 to 32"),
                      ("x" * 33, "at most 32"), ("lamp/1", "'/'"), ("lamp+", "'+'")]:  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(says)):
            nodeid.check(bad)


@pytest.mark.parametrize("command", [["check", "sim-1", "--timeout", "1"], ["monitor", "--once"],
                                     ["report", "--duration", "1", "--out", "OUT"]])  # fmt: skip
def test_broker_without_a_port_means_the_default_port(command, capsys, tmp_path):
    argv = [a.replace("OUT", str(tmp_path / "r")) for a in command] + ["--broker", "127.0.0.1"]
    code, err = _run(argv, capsys)
    assert code == 1, err  # nothing listens there in the test: a failure, not a usage error
    assert "127.0.0.1:1883" in err, err
