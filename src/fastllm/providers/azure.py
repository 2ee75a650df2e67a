"""``AzureOpenAIProvider``: OpenAI models deployed on Azure.

Same bodies and answers as OpenAI; what differs is where and how they are sent::

    POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21
    api-key: <key>                      (or Authorization: Bearer <Entra ID token>)

The deployment is taken, in order, from ``deployment`` (one for every request),
from ``deployments`` (a mapping from the request's ``model``), else the ``model``
itself (Azure's usual convention of naming deployments after models). Azure sends
``x-ratelimit-remaining-requests`` / ``-tokens`` like OpenAI, so the limiter reads
them as they are; errors are OpenAI-shaped and map the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

import orjson
import xxhash

from fastllm.errors import ConfigurationError, NotRunError, ResponseDecodingError
from fastllm.providers.base import Provider, ProviderResponse
from fastllm.providers.exchange import JsonExchange
from fastllm.providers.sse import StreamAssembler
from fastllm.requests.model import Endpoint, Request

if TYPE_CHECKING:
    from fastllm.transport import HttpSession

__all__ = ["AZURE_API_VERSION", "AzureOpenAIProvider"]

AZURE_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(Provider):
    """An Azure OpenAI resource.

    ``endpoint`` (``https://<resource>.openai.azure.com``), ``api_key`` and
    ``api_version`` default to ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY`` and
    ``OPENAI_API_VERSION`` (else ``2024-10-21``), as in the openai SDK. Give
    ``azure_ad_token`` instead of a key to authenticate with Entra ID.
    """

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        api_version: str | None = None,
        *,
        deployment: str | None = None,
        deployments: Mapping[str, str] | None = None,
        azure_ad_token: str | None = None,
        headers: Mapping[str, str] | None = None,
        stream_idle_timeout: float | None = None,
        transport: Literal["fast", "aiohttp"] = "fast",
    ) -> None:
        if api_key is None and azure_ad_token is None:
            api_key = os.environ.get("AZURE_OPENAI_API_KEY") or None
        endpoint = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ConfigurationError(
                "endpoint", "give the resource URL (https://<resource>.openai.azure.com)"
            )
        secret = azure_ad_token or api_key
        super().__init__(secret, endpoint, headers)
        self.api_version = api_version or os.environ.get("OPENAI_API_VERSION") or AZURE_API_VERSION
        self.deployment = deployment
        self.deployments = dict(deployments or {})
        self._bearer = azure_ad_token is not None
        fixed = f":{deployment}" if deployment else ""
        self.cache_namespace = xxhash.xxh3_64_hexdigest(
            f"azure-openai:{self.api_base}{fixed}".encode()
        )
        self._exchange = JsonExchange(
            self.api_base, secret, transport=transport, stream_idle_timeout=stream_idle_timeout
        )
        self._headers = self.get_request_headers()
        self._exchange.check(f"{self.api_base}/openai/deployments/d/embeddings", self._headers)
        self._urls: dict[tuple[str, Endpoint], str] = {}

    def get_request_headers(self) -> dict[str, str]:
        """``api-key`` (or ``Authorization: Bearer`` for an Entra ID token), then custom headers."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            if self._bearer:
                headers["Authorization"] = f"Bearer {self.api_key}"
            else:
                headers["api-key"] = self.api_key
        headers.update(self.headers)
        return headers

    def deployment_for(self, model: object) -> str:
        """The deployment a request for ``model`` goes to."""
        if self.deployment:
            return self.deployment
        if isinstance(model, str) and model:
            return self.deployments.get(model, model)
        raise NotRunError("not sent: the request has no model to choose an Azure deployment by")

    def get_request_url(self, endpoint: Endpoint | str, model: object = None) -> str:
        """``{endpoint}/openai/deployments/{deployment}/{path}?api-version=...``."""
        path = Endpoint.from_url(endpoint).path
        deployment = quote(self.deployment_for(model), safe="")
        return (
            f"{self.api_base}/openai/deployments/{deployment}/{path}?api-version="
            f"{quote(self.api_version, safe='')}"
        )

    async def make_request(
        self, session: HttpSession, request: Request, timeout: float
    ) -> ProviderResponse:
        """POST the body to the request's deployment; return the answer or raise a typed error."""
        model = request.body.get("model")
        key = (model if isinstance(model, str) else "", request.endpoint)
        url = self._urls.get(key)
        if url is None:
            url = self.get_request_url(request.endpoint, model)
            if len(self._urls) < 1024:  # a handful of models in practice; bounded anyway
                self._urls[key] = url
        data = orjson.dumps(request.body)
        if request.body.get("stream") is True:
            assembler = StreamAssembler(self.api_key)
            sent = time.perf_counter()
            first: list[float] = []

            def on_line(line: bytes) -> bool:
                assembler.feed_line(line)
                if not first and assembler.chunks:
                    first.append(time.perf_counter() - sent)
                return assembler.done

            headers = await self._exchange.stream(
                session, url, data, self._headers, timeout, on_line
            )
            ttft = first[0] if first else None
            return ProviderResponse(assembler.result(), None, headers, ttft)
        answer = await self._exchange.post(session, url, data, self._headers, timeout)
        field = "choices" if request.endpoint is Endpoint.CHAT_COMPLETIONS else "data"
        if not isinstance(answer.body, dict) or not isinstance(answer.body.get(field), list):
            raise ResponseDecodingError(f"the answer has no {field!r} list", retryable=False)
        return ProviderResponse(answer.body, answer.raw, answer.headers)
