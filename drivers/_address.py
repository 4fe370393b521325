"""Address strings: one string picks the transport, so switching a driver from the simulator to
real hardware means changing the address and nothing else.

Accepted forms (checked before anything is opened; `AddressError` names what would be accepted):

- a VISA resource name, e.g. ``TCPIP0::192.168.1.5::inst0::INSTR``, ``ASRL/dev/ttyUSB0::INSTR``,
  ``USB0::0x0957::0x1799::MY123::INSTR``, ``GPIB0::12::INSTR`` (pass ``visa_library="@sim"`` or
  `timecontrol.drivers.sim.SIM_LIBRARY` for simulated ones);
- ``tcp://host:port`` for raw SCPI over a socket (port usually 5025);
- ``serial:<port>`` for a serial port through pyserial-asyncio-fast (asyncio only), e.g.
  ``serial:/dev/ttyUSB0``, ``serial:COM3``, ``serial:socket://host:port``.
"""

from __future__ import annotations

import re
from typing import Any

from ._errors import AddressError
from ._transport import Transport

__all__ = ["transport_for"]

_VISA_INTERFACES = re.compile(r"(?i)(ASRL|GPIB|USB|TCPIP|VXI|PXI|VICP|FIREWIRE|RIO)")
_ACCEPTED = (
    "a VISA resource name (e.g. 'TCPIP0::10.0.0.5::inst0::INSTR'), "
    "'tcp://host:port', or 'serial:<port>' (e.g. 'serial:/dev/ttyUSB0')"
)


def _split_host_port(address: str, rest: str) -> tuple[str, int]:
    host, sep, port_text = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # [::1]:5025
    if not sep or not host or not port_text.isdigit():
        raise AddressError(address, "expected tcp://host:port, e.g. tcp://192.168.1.5:5025")
    return host, int(port_text)


def transport_for(address: str, **options: Any) -> Transport:
    """Build (but do not open) the transport for an address string.

    `options` go to the transport's constructor (``visa_library``, ``baudrate``, terminations,
    ...); an option the transport does not know is an `AddressError`.
    """
    if not isinstance(address, str):
        raise AddressError(address, f"an address is a string: {_ACCEPTED}")
    text = address.strip()
    if not text:
        raise AddressError(address, f"empty address; expected {_ACCEPTED}")
    lowered = text.lower()
    try:
        if lowered.startswith("tcp://"):
            from .tcp import TcpTransport

            host, port = _split_host_port(address, text[len("tcp://") :])
            return TcpTransport(host, port, **options)
        if lowered.startswith("serial:"):
            from .serial import SerialTransport

            return SerialTransport(text[len("serial:") :], **options)
        if _VISA_INTERFACES.match(text):
            from .visa import VisaTransport

            return VisaTransport(text, **options)
    except TypeError as exc:  # an unknown keyword for that transport
        raise AddressError(address, f"unsupported option for this transport: {exc}") from None
    raise AddressError(address, f"unknown address form; expected {_ACCEPTED}")
