"""AzureOpenAIProvider against the mock's Azure deployment URLs: URL, headers, errors, limits."""

from __future__ import annotations

from collections.abc import Callable

from fastllm import RequestBatch, RequestManager
from fastllm.errors import AuthenticationError, NotFoundError, RateLimitError
from fastllm.providers import AzureOpenAIProvider
from fastllm.testing import MockServer


def batch_for(*models: str, stream: bool = False) -> RequestBatch:
    batch = RequestBatch()
    for i, model in enumerate(models):
        batch.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"azure {i}"}], stream=stream
        )
    return batch


def test_the_url_names_the_deployment_and_api_version(server: MockServer) -> None:
    provider = AzureOpenAIProvider(
        api_key="k", endpoint=server.url, api_version="2024-10-21", deployments={"gpt-4o": "prod"}
    )
    assert provider.get_request_url("/v1/chat/completions", "gpt-4o") == (
        f"{server.url}/openai/deployments/prod/chat/completions?api-version=2024-10-21"
    )
    assert provider.get_request_url("/v1/embeddings", "small") == (
        f"{server.url}/openai/deployments/small/embeddings?api-version=2024-10-21"
    )
    assert provider.get_request_headers()["api-key"] == "k"
    assert "Authorization" not in provider.get_request_headers()
    assert "k" not in repr(provider).replace("api_key", "")


def test_requests_reach_their_deployments_with_the_key(
    server: MockServer, api_key: str, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(api_key=api_key)
    provider = AzureOpenAIProvider(
        api_key=api_key, endpoint=server.url, deployments={"gpt-4o": "prod-4o"}
    )
    batch = batch_for("gpt-4o", "gpt-4o-mini", "gpt-4o")
    batch.embeddings.create(model="emb", input=["a", "b"])
    results = make_manager(provider).process_batch(batch)
    assert all(r.ok for r in results)
    assert results[0].response.choices[0].message.content == "azure 0"
    assert len(results[3].embeddings) == 2
    assert server.stats()["by_endpoint"] == {
        "/openai/deployments/prod-4o/chat/completions": 2,
        "/openai/deployments/gpt-4o-mini/chat/completions": 1,
        "/openai/deployments/emb/embeddings": 1,
    }
    [streamed] = make_manager(provider).process_batch(batch_for("gpt-4o", stream=True))
    assert streamed.response.choices[0].message.content == "azure 0"
    assert streamed.ttft is not None


def test_entra_id_token_is_sent_as_bearer(
    server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(api_key="entra-token-1")
    provider = AzureOpenAIProvider(
        azure_ad_token="entra-token-1", endpoint=server.url, deployment="fixed"
    )
    assert provider.get_request_headers()["Authorization"] == "Bearer entra-token-1"
    [result] = make_manager(provider).process_batch(batch_for("anything"))
    assert result.ok
    assert server.stats()["by_endpoint"] == {"/openai/deployments/fixed/chat/completions": 1}


def test_error_mapping(
    server: MockServer, api_key: str, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(api_key=api_key)
    wrong = AzureOpenAIProvider(api_key="wrong-" + api_key, endpoint=server.url)
    [denied] = make_manager(wrong).process_batch(batch_for("gpt-4o"))
    assert isinstance(denied.error, AuthenticationError)
    assert denied.attempts == 1
    assert "invalid subscription key" in str(denied.error)
    assert api_key not in str(denied.error)

    provider = AzureOpenAIProvider(api_key=api_key, endpoint=server.url)
    server.configure(known_models=["gpt-4o"])
    [missing] = make_manager(provider).process_batch(batch_for("gpt-5"))
    assert isinstance(missing.error, NotFoundError)

    server.configure(known_models=None, quota_429=1.0)
    [quota] = make_manager(provider).process_batch(batch_for("gpt-4o"))
    assert isinstance(quota.error, RateLimitError)
    assert quota.error.code == "insufficient_quota"
    assert quota.attempts == 1


def test_rate_limit_headers_are_learned(
    server: MockServer, make_manager: Callable[..., RequestManager]
) -> None:
    server.configure(rate_limit_requests=30, rate_limit_window=60.0)
    provider = AzureOpenAIProvider(api_key="k", endpoint=server.url)
    manager = make_manager(provider, concurrency=4)
    assert all(r.ok for r in manager.process_batch(batch_for(*["gpt-4o"] * 6)))
    assert manager.stats().request_limit == 30
