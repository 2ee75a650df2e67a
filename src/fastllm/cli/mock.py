"""``fastllm mock-server``: the bundled OpenAI-compatible mock server in the foreground."""

from __future__ import annotations

import click

__all__ = ["mock_server"]

_FRACTION = click.FloatRange(0.0, 1.0)
_SECONDS = click.FloatRange(min=0.0)


@click.command("mock-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free."
)
@click.option(
    "--latency", type=_SECONDS, default=0.0, show_default=True, help="Seconds per answer."
)
@click.option("--jitter", type=_SECONDS, default=0.0, show_default=True, help="+- seconds.")
@click.option("--fail-429", type=_FRACTION, default=0.0, help="Fraction answered 429.")
@click.option("--fail-500", type=_FRACTION, default=0.0, help="Fraction answered 500.")
@click.option("--quota-429", type=_FRACTION, default=0.0, help="Fraction out of quota (429).")
@click.option(
    "--fail-first",
    type=click.IntRange(min=0),
    default=0,
    help="The first N requests of every distinct body fail.",
)
@click.option(
    "--fail-first-status",
    type=click.IntRange(400, 599),
    default=500,
    show_default=True,
    help="Status of the --fail-first answers.",
)
@click.option("--hang", type=_FRACTION, default=0.0, help="Fraction never answered.")
@click.option("--malformed", type=_FRACTION, default=0.0, help="Fraction answered with bad JSON.")
@click.option("--drop", type=_FRACTION, default=0.0, help="Fraction of connections dropped.")
@click.option("--retry-after", default="1", show_default=True, help="Retry-After of injected 429s.")
@click.option("--rpm", type=click.IntRange(min=1), help="Server-side requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), help="Server-side tokens per minute.")
@click.option("--models", help="Comma-separated known models (others get 404).")
@click.option("--seed", type=int, help="Seed of the fault RNG (reproducible faults).")
def mock_server(
    host: str,
    port: int,
    latency: float,
    jitter: float,
    fail_429: float,
    fail_500: float,
    quota_429: float,
    fail_first: int,
    fail_first_status: int,
    hang: float,
    malformed: float,
    drop: float,
    retry_after: str,
    rpm: int | None,
    tpm: int | None,
    models: str | None,
    seed: int | None,
) -> None:
    """Run the FastLLM mock OpenAI-compatible server until Ctrl-C.

    Chat answers echo the last user message; embeddings are deterministic.
    Control endpoints: GET /stats, POST /reset, GET|POST /config, GET /health.
    Prints the base URL (``http://HOST:PORT/v1``) once it accepts connections.
    """
    from fastllm.testing import MockServerConfig, serve

    known = [m.strip() for m in models.split(",") if m.strip()] if models else None
    try:
        config = MockServerConfig(
            latency=latency,
            jitter=jitter,
            fail_429=fail_429,
            fail_500=fail_500,
            quota_429=quota_429,
            fail_first=fail_first,
            fail_first_status=fail_first_status,
            hang=hang,
            malformed=malformed,
            drop=drop,
            retry_after=retry_after or None,
            rate_limit_requests=rpm,
            rate_limit_tokens=tpm,
            rate_limit_window=60.0,
            known_models=known,
            seed=seed,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if hang + drop + quota_429 + fail_429 + fail_500 + malformed > 1.0:
        raise click.UsageError("the fault fractions add up to more than 1")

    def ready(real_port: int) -> None:
        click.echo(f"fastllm mock server listening on http://{host}:{real_port}/v1")
        click.echo("press Ctrl-C to stop", err=True)

    try:
        serve(config, host, port, ready)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc}") from exc
    click.echo("mock server stopped", err=True)
