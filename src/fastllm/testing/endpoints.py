"""``MockEndpoints``: several independent mock servers, each its own "endpoint", that can go down.

Each endpoint is a :class:`~fastllm.testing.MockServer` with its own configuration
(limits, faults, key), so a pool of providers can be tested offline: give one a
10× lower ``rate_limit_requests``, another ``fail_500=0.2``. :meth:`take_down`
stops one (connections are then refused, requests in flight are cut) and
:meth:`bring_up` starts it again on the same port with its last configuration, as
a real outage would look from the client. :meth:`served` counts the API requests
an endpoint answered over all its lives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastllm.testing.config import MockServerConfig
from fastllm.testing.mock_server import MockServer

__all__ = ["MockEndpoints"]


class MockEndpoints:
    """Mock servers on ``127.0.0.1`` (threads), one per config; use it as a context manager."""

    def __init__(self, *configs: MockServerConfig | None, host: str = "127.0.0.1") -> None:
        if not configs:
            raise ValueError("give at least one config (None for the defaults)")
        self.host = host
        self._configs = [config or MockServerConfig() for config in configs]
        self._servers: list[MockServer | None] = [None] * len(configs)
        self._ports: list[int] = [0] * len(configs)
        self._served = [0] * len(configs)

    def __len__(self) -> int:
        return len(self._configs)

    def __getitem__(self, index: int) -> MockServer:
        """The running server of endpoint ``index`` (``RuntimeError`` while it is down)."""
        server = self._servers[index]
        if server is None:
            raise RuntimeError(f"mock endpoint {index} is down")
        return server

    @property
    def base_urls(self) -> list[str]:
        """``http://host:port/v1`` of every endpoint (stable across take_down/bring_up)."""
        return [f"http://{self.host}:{port}/v1" for port in self._ports]

    @property
    def urls(self) -> list[str]:
        """``http://host:port`` of every endpoint (Azure-style endpoints)."""
        return [f"http://{self.host}:{port}" for port in self._ports]

    def is_up(self, index: int) -> bool:
        """Whether endpoint ``index`` is serving."""
        return self._servers[index] is not None

    def start(self) -> MockEndpoints:
        """Start every endpoint."""
        try:
            for index in range(len(self)):
                self.bring_up(index)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every endpoint."""
        for index in range(len(self)):
            self.take_down(index)

    def __enter__(self) -> MockEndpoints:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def take_down(self, index: int) -> None:
        """Stop endpoint ``index``: new connections are refused, open ones are cut."""
        server = self._servers[index]
        if server is None:
            return
        self._configs[index] = server.config
        self._servers[index] = None
        # cut API requests first, so none is answered after the count is read
        server.configure(drop=1.0)
        self._served[index] += int(server.stats()["requests"])
        server.stop()

    def bring_up(self, index: int, **changes: Any) -> MockServer:
        """(Re)start endpoint ``index`` on its port, with its last config and ``changes``."""
        if self._servers[index] is not None:
            raise RuntimeError(f"mock endpoint {index} is already up")
        config = replace(self._configs[index], **changes) if changes else self._configs[index]
        server = MockServer(config, host=self.host, port=self._ports[index]).start()
        self._ports[index] = server.port
        self._configs[index] = config
        self._servers[index] = server
        return server

    def served(self, index: int) -> int:
        """API requests endpoint ``index`` received over all its lives (answered or not)."""
        server = self._servers[index]
        current = int(server.stats()["requests"]) if server is not None else 0
        return self._served[index] + current
