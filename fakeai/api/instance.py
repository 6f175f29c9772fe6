"""How a server names itself to systems that watch many: alert receivers and OTLP collectors.

Prometheus names a target by the address it scrapes (``instance="host:port"``); fakeai names
itself the same way, so an alert, an OTLP series and a scraped series of one server carry the
same instance: ``--instance-name`` when set, else ``<host>:<port>`` of ``--host`` and ``--port``
(the machine's hostname for a wildcard address such as ``0.0.0.0``, which no one can reach).
Every worker process of a server computes the same name.
"""

from __future__ import annotations

import socket

from fakeai.config import Settings

__all__ = ("instance_name", "server_url")

_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def _address(settings: Settings) -> str:
    host = settings.host
    if host in _WILDCARDS:
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL or an instance label
    return f"{host}:{settings.port}"


def instance_name(settings: Settings) -> str:
    """This server's name: ``--instance-name``, or ``<host>:<port>``."""
    return settings.instance_name or _address(settings)


def server_url(settings: Settings) -> str:
    """Where this server is reached (alerts link to it): ``http://<host>:<port>``."""
    return f"http://{_address(settings)}"
