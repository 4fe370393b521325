"""Parsers, errors, addresses and validation: everything that must fail before any I/O."""

from __future__ import annotations

import math

import pytest
from timecontrol.drivers import (
    AddressError,
    BackendError,
    CommandError,
    DriverError,
    InstrumentError,
    InstrumentTimeout,
    MockTransport,
    NotConnectedError,
    OutOfRangeError,
    ReplyParseError,
    ScpiInstrument,
    Setting,
    TcpTransport,
    TransportError,
    parse_bool,
    parse_float,
    parse_int,
    transport_for,
)
from timecontrol.drivers.serial import SerialTransport
from timecontrol.drivers.visa import VisaTransport

from timecontrol._exceptions import TimeControlError


def test_every_error_is_a_timecontrol_error() -> None:
    for cls in (
        AddressError,
        BackendError,
        CommandError,
        InstrumentError,
        InstrumentTimeout,
        NotConnectedError,
        OutOfRangeError,
        ReplyParseError,
        TransportError,
    ):
        assert issubclass(cls, DriverError)
        assert issubclass(cls, TimeControlError)
    # and the builtin families, so that ordinary except clauses work too
    assert issubclass(InstrumentTimeout, TimeoutError)
    assert issubclass(TransportError, ConnectionError)
    assert issubclass(OutOfRangeError, ValueError)


def test_errors_name_what_went_wrong() -> None:
    err = ReplyParseError("MEAS:VOLT?", "1.2\udcff3", "a number")
    assert err.command == "MEAS:VOLT?"
    assert err.reply == "1.2\udcff3"
    assert "MEAS:VOLT?" in str(err)
    assert "a number" in str(err)
    out = OutOfRangeError.for_limits("voltage", 31.0, 0.0, 30.0)
    assert out.value == 31.0
    assert "31.0" in str(out)
    assert "30.0" in str(out)
    timeout = InstrumentTimeout("*IDN?", 0.25)
    assert "*IDN?" in str(timeout)
    assert "0.25" in str(timeout)


@pytest.mark.parametrize(
    ("text", "value"),
    [("5", 5.0), ("+5.000000E+00", 5.0), (" -1e-3 ", -0.001), (".5", 0.5), ("9.9E37", 9.9e37)],
)
def test_parse_float_accepts_scpi_numbers(text: str, value: float) -> None:
    assert parse_float(text) == value


def test_parse_float_nonfinite_and_rejects() -> None:
    assert math.isnan(parse_float("NAN"))
    assert parse_float("-INF") == -math.inf
    for bad in ("", "1_0", "1 0", "abc", "1.2.3", "1\udcff", "0x10", "infinity"):
        with pytest.raises(ValueError, match="not a number"):
            parse_float(bad)


def test_parse_int_and_bool() -> None:
    assert parse_int("+12") == 12
    assert parse_int("1.2E+01") == 12
    for bad in ("1.5", "x", "", "1e400x"):
        with pytest.raises(ValueError, match="not an integer"):
            parse_int(bad)
    assert parse_bool("ON") is True
    assert parse_bool(" 0 ") is False
    assert parse_bool("+1") is True
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("2")


@pytest.mark.parametrize(
    "address",
    ["", "   ", "http://x", "tcp://host", "tcp://:5025", "tcp://host:port", "nonsense::INSTR"],
)
def test_malformed_addresses(address: str) -> None:
    with pytest.raises(AddressError):
        transport_for(address)


def test_address_forms_pick_transports() -> None:
    tcp = transport_for("tcp://10.0.0.5:5025")
    assert isinstance(tcp, TcpTransport)
    assert (tcp.host, tcp.port) == ("10.0.0.5", 5025)
    assert isinstance(transport_for("tcp://[::1]:5025"), TcpTransport)
    assert isinstance(transport_for("serial:/dev/ttyUSB0", baudrate=115200), SerialTransport)
    visa = transport_for("TCPIP0::10.0.0.5::inst0::INSTR")
    assert isinstance(visa, VisaTransport)
    with pytest.raises(AddressError, match="unsupported option"):
        transport_for("tcp://10.0.0.5:5025", baudrate=9600)


def test_transport_argument_checks() -> None:
    with pytest.raises(AddressError):
        TcpTransport("host", 70000)
    with pytest.raises(AddressError):
        TcpTransport("", 5025)
    with pytest.raises(AddressError, match="loop://"):
        SerialTransport("loop://")
    with pytest.raises(AddressError):
        SerialTransport("/dev/ttyS0", baudrate=0)
    with pytest.raises(AddressError):
        SerialTransport("/dev/ttyS0", parity="X")
    with pytest.raises(AddressError):
        VisaTransport("GPIB0::12::INSTR::x")
    with pytest.raises(AddressError, match="not enough parts"):
        VisaTransport("USB0::INSTR")


class _Supply(ScpiInstrument):
    voltage = Setting("VOLT", float, limits=(0.0, 30.0), unit="V", primary=True)
    mode = Setting("MODE", str, choices=("CV", "CC"))
    count = Setting("COUNT", int, limits=(1, 10))
    output = Setting("OUTP", bool)


@pytest.mark.anyio
async def test_bad_values_rejected_before_anything_is_sent() -> None:
    transport = MockTransport()
    async with _Supply(transport) as psu:
        for bad in (31.0, -0.1, math.nan, math.inf, "5", True, None):
            with pytest.raises(OutOfRangeError) as info:
                await psu.voltage.set(bad)  # type: ignore[arg-type]
            assert info.value.name == "voltage"
        with pytest.raises(OutOfRangeError, match="'CV', 'CC'"):
            await psu.mode.set("XX")
        with pytest.raises(OutOfRangeError):
            await psu.mode.set("CV;*RST")  # would smuggle in a second command
        with pytest.raises(OutOfRangeError):
            await psu.count.set(2.5)  # type: ignore[arg-type]
        with pytest.raises(OutOfRangeError):
            await psu.set(99)
        with pytest.raises(CommandError):
            await psu.write("VOLT 1\nVOLT 2")
        with pytest.raises(CommandError):
            await psu.write("   ")
        with pytest.raises(CommandError):
            await psu.write("VOLT 5", timeout=0)
        with pytest.raises(CommandError):
            await psu.write("MESS µ")  # not ASCII
        assert transport.written == []
        await psu.voltage.set(5)  # an int is a fine float
        await psu.output.set(True)
        await psu.voltage.set(1e-7)
    assert transport.written == ["VOLT 5", "OUTP 1", "VOLT 1e-07"]


@pytest.mark.anyio
async def test_not_connected() -> None:
    psu = _Supply(MockTransport())
    with pytest.raises(NotConnectedError):
        await psu.query("*IDN?")
    async with psu:
        pass
    with pytest.raises(NotConnectedError):
        await psu.voltage.get()


def test_definition_errors() -> None:
    with pytest.raises(DriverError, match="only one primary"):

        class _Two(ScpiInstrument):
            a = Setting("A", float, primary=True)
            b = Setting("B", float, primary=True)

    with pytest.raises(DriverError):
        Setting("A", float, limits=(1.0, 0.0))
    with pytest.raises(DriverError):
        Setting("A", list)
    with pytest.raises(AddressError, match="only apply to an address"):
        _Supply(MockTransport(), baudrate=9600)
