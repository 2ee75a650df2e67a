"""The ``fastllm`` command line, in-process with click's CliRunner, against the real mock server."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from fastllm.cli.main import cli
from fastllm.testing import MockServer, MockServerConfig

KEY = "sk-cli-test-SECRET-7c41d09e"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def _mock() -> Iterator[MockServer]:
    with MockServer(MockServerConfig()) as server:
        yield server


@pytest.fixture
def mock(_mock: MockServer) -> MockServer:
    """The module's mock server with default behaviour and zeroed stats."""
    _mock.configure(**asdict(MockServerConfig()))
    _mock.reset()
    return _mock


def invoke(*args: str | Path, stdin: str | None = None) -> Result:
    runner = CliRunner(env={"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None})
    return runner.invoke(cli, [str(a) for a in args], input=stdin, catch_exceptions=False)


def run_cli(mock: MockServer, source: Path, output: Path, *extra: str | Path) -> Result:
    return invoke(
        "run", source, "-o", output, "--base-url", mock.base_url, "--api-key", KEY,
        "--no-progress", "--concurrency", "20", "--retry-delay", "0.01", *extra,
    )  # fmt: skip


def chat_line(custom_id: str | None, prompt: str, model: str = "mock-model") -> dict[str, Any]:
    line: dict[str, Any] = {
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": prompt}]},
    }
    if custom_id is not None:
        line["custom_id"] = custom_id
    return line


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    with open(path, "wb") as handle:
        for line in lines:
            handle.write(line if isinstance(line, bytes) else orjson.dumps(line))
            handle.write(b"\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines()]


def content(line: dict[str, Any]) -> str:
    text: str = line["response"]["body"]["choices"][0]["message"]["content"]
    return text


def prompts_file(path: Path, count: int, distinct: int | None = None) -> Path:
    distinct = distinct or count
    return write_jsonl(
        path, [chat_line(f"req-{i}", f"prompt {i % distinct}") for i in range(count)]
    )


# -- help and version ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [[], ["run"], ["demo"], ["mock-server"], ["cache"], ["cache", "stats"], ["cache", "clear"],
     ["split"]],
)  # fmt: skip
def test_every_command_has_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert "fastllm, version" in result.stdout


# -- run -----------------------------------------------------------------------------


def test_run_writes_batch_output_in_input_order(mock: MockServer, tmp_path: Path) -> None:
    mock.configure(latency=0.01, jitter=0.01)  # answers finish out of order
    source = prompts_file(tmp_path / "in.jsonl", 60, distinct=45)
    output = tmp_path / "out.jsonl"
    result = run_cli(mock, source, output)
    assert result.exit_code == 0, result.stderr
    lines = read_jsonl(output)
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(60)]
    assert [content(line) for line in lines] == [f"prompt {i % 45}" for i in range(60)]
    assert len({line["id"] for line in lines}) == 60
    for line in lines:
        assert list(line) == ["id", "custom_id", "response", "error"]
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        assert isinstance(line["response"]["request_id"], str)
        assert line["response"]["body"]["object"] == "chat.completion"
    assert mock.stats()["requests"] == 45  # duplicates were sent once
    assert "wrote 60 lines" in result.stderr
    assert "60 ok, 0 failed" in result.stderr


def test_run_with_progress_prints_the_summary_once(mock: MockServer, tmp_path: Path) -> None:
    source = prompts_file(tmp_path / "in.jsonl", 5)
    output = tmp_path / "out.jsonl"
    result = invoke("run", source, "-o", output, "--base-url", mock.base_url, "--api-key", KEY)
    assert result.exit_code == 0, result.stderr
    assert result.output.count("5 ok, 0 failed") == 1
    assert len(read_jsonl(output)) == 5


def test_run_without_custom_ids_and_with_embeddings(mock: MockServer, tmp_path: Path) -> None:
    embedding = {"method": "POST", "url": "/v1/embeddings",
                 "body": {"model": "emb", "input": "hello", "dimensions": 8}}  # fmt: skip
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line(None, "a"), embedding])
    output = tmp_path / "out.jsonl"
    assert run_cli(mock, source, output).exit_code == 0
    first, second = read_jsonl(output)
    assert first["custom_id"].endswith("#0")
    assert len(second["response"]["body"]["data"][0]["embedding"]) == 8


def test_run_reports_failed_requests_with_status_and_code(mock: MockServer, tmp_path: Path) -> None:
    mock.configure(known_models=["mock-model"])
    lines = [chat_line(f"r{i}", f"p{i}", "mock-model" if i % 2 else "no-such-model")
             for i in range(10)]  # fmt: skip
    output = tmp_path / "out.jsonl"
    result = run_cli(mock, write_jsonl(tmp_path / "in.jsonl", lines), output)
    assert result.exit_code == 1
    written = read_jsonl(output)
    assert [line["custom_id"] for line in written] == [f"r{i}" for i in range(10)]
    for i, line in enumerate(written):
        if i % 2:
            assert line["error"] is None
            assert content(line) == f"p{i}"
        else:
            assert line["response"]["status_code"] == 404
            assert line["response"]["body"]["error"]["code"] == "model_not_found"
            assert line["error"]["code"] == "model_not_found"
            assert "does not exist" in line["error"]["message"]
    assert "5 ok, 5 failed" in result.stderr


def test_run_fail_first_400_is_not_retried(mock: MockServer, tmp_path: Path) -> None:
    mock.configure(fail_first=1, fail_first_status=400)
    output = tmp_path / "out.jsonl"
    result = run_cli(mock, prompts_file(tmp_path / "in.jsonl", 5), output, "--retries", "3")
    assert result.exit_code == 1
    assert all(line["response"]["status_code"] == 400 for line in read_jsonl(output))
    assert mock.stats()["requests"] == 5


def test_run_retries_then_succeeds(mock: MockServer, tmp_path: Path) -> None:
    mock.configure(fail_first=1, fail_first_status=500)
    output = tmp_path / "out.jsonl"
    result = run_cli(mock, prompts_file(tmp_path / "in.jsonl", 8), output, "--retries", "1")
    assert result.exit_code == 0, result.stderr
    assert mock.stats()["by_status"] == {"200": 8, "500": 8}


def test_run_timeout_gives_error_lines_without_response(mock: MockServer, tmp_path: Path) -> None:
    mock.configure(hang=1.0)
    output = tmp_path / "out.jsonl"
    source = prompts_file(tmp_path / "in.jsonl", 3)
    result = run_cli(mock, source, output, "--timeout", "0.2", "--retries", "0")
    assert result.exit_code == 1
    for line in read_jsonl(output):
        assert line["response"] is None
        assert line["error"]["code"] == "APITimeoutError"


def test_malformed_input_lines_become_error_lines(mock: MockServer, tmp_path: Path) -> None:
    bad_url = {**chat_line("bad-url", "x"), "url": "/v1/nope"}
    no_messages = {"custom_id": "no-msg", "url": CHAT, "body": {"model": "mock-model"}}
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            chat_line("ok-1", "one"),
            b"{not json",
            b"",
            bad_url,
            no_messages,
            chat_line("ok-2", "two"),
        ],
    )
    output = tmp_path / "out.jsonl"
    result = run_cli(mock, source, output)
    assert result.exit_code == 1
    lines = read_jsonl(output)
    assert [line["custom_id"] for line in lines] == ["ok-1", None, "bad-url", "no-msg", "ok-2"]
    assert content(lines[0]) == "one"
    assert content(lines[4]) == "two"
    for line, number in zip(lines[1:4], (2, 4, 5), strict=True):
        assert line["response"] is None
        assert line["error"]["code"] == "RequestFormatError"
        assert f"line {number}" in line["error"]["message"]


def test_resume_appends_only_the_missing_lines(mock: MockServer, tmp_path: Path) -> None:
    source = prompts_file(tmp_path / "in.jsonl", 40)
    output = tmp_path / "out.jsonl"
    done = [{"id": f"old-{i}", "custom_id": f"req-{i}", "response": {"status_code": 200},
             "error": None} for i in range(15)]  # fmt: skip
    write_jsonl(output, done)
    kept = output.read_bytes()
    with open(output, "ab") as handle:
        handle.write(b'{"id": "old-15", "custom_id": "req-1')  # cut off mid-line
    result = run_cli(mock, source, output)
    assert result.exit_code == 0, result.stderr
    data = output.read_bytes()
    assert data.startswith(kept)
    lines = read_jsonl(output)
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(40)]
    assert [content(line) for line in lines[15:]] == [f"prompt {i}" for i in range(15, 40)]
    assert mock.stats()["requests"] == 25
    assert "skipped 15 input lines" in result.stderr
    assert "partial last line" in result.stderr
    # a complete output: nothing more is sent, the status stays 0
    again = run_cli(mock, source, output)
    assert again.exit_code == 0
    assert output.read_bytes() == data
    assert mock.stats()["requests"] == 25


def test_resume_counts_earlier_failures_in_the_exit_status(
    mock: MockServer, tmp_path: Path
) -> None:
    source = prompts_file(tmp_path / "in.jsonl", 4)
    output = write_jsonl(tmp_path / "out.jsonl", [
        {"id": "x", "custom_id": "req-0", "response": None, "error": {"code": "e", "message": "m"}},
    ])  # fmt: skip
    result = run_cli(mock, source, output)
    assert result.exit_code == 1
    assert "1 of them failed" in result.stderr
    assert len(read_jsonl(output)) == 4


def test_resume_refuses_the_output_of_another_input(mock: MockServer, tmp_path: Path) -> None:
    source = prompts_file(tmp_path / "in.jsonl", 3)
    output = write_jsonl(tmp_path / "out.jsonl", [{"custom_id": "other", "error": None}])
    result = run_cli(mock, source, output)
    assert result.exit_code == 2
    assert "not the output of" in result.stderr
    longer = write_jsonl(tmp_path / "long.jsonl", [{"custom_id": f"req-{i}"} for i in range(5)])
    assert run_cli(mock, source, longer).exit_code == 2
    assert mock.stats()["requests"] == 0
    assert run_cli(mock, source, output, "--overwrite").exit_code == 0
    assert len(read_jsonl(output)) == 3


def test_cache_dir_answers_a_second_run_without_sending(mock: MockServer, tmp_path: Path) -> None:
    source = prompts_file(tmp_path / "in.jsonl", 30, distinct=20)
    cache_dir = tmp_path / "cache"
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert run_cli(mock, source, first, "--cache-dir", cache_dir).exit_code == 0
    assert mock.stats()["requests"] == 20
    mock.reset()
    result = run_cli(mock, source, second, "--cache-dir", cache_dir)
    assert result.exit_code == 0
    assert mock.stats()["requests"] == 0
    assert [line["response"] for line in read_jsonl(first)] == [
        line["response"] for line in read_jsonl(second)
    ]
    assert "from cache" in result.stderr

    stats = invoke("cache", "stats", cache_dir)
    assert stats.exit_code == 0
    assert "entries  20" in stats.stdout
    refused = invoke("cache", "clear", cache_dir, stdin="n\n")
    assert refused.exit_code == 1
    assert "entries  20" in invoke("cache", "stats", cache_dir).stdout
    cleared = invoke("cache", "clear", cache_dir, "--yes")
    assert cleared.exit_code == 0
    assert "cleared 20 entries" in cleared.stdout
    assert "entries  0" in invoke("cache", "stats", cache_dir).stdout


def test_cache_commands_refuse_what_is_not_a_cache(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert invoke("cache", "stats", missing).exit_code == 2
    assert invoke("cache", "clear", missing, "--yes").exit_code == 2
    assert not missing.exists()  # not created as a side effect
    (tmp_path / "empty").mkdir()
    result = invoke("cache", "stats", tmp_path / "empty")
    assert result.exit_code == 2
    assert "not a FastLLM disk cache" in result.stderr
    assert list((tmp_path / "empty").iterdir()) == []
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "cache.sqlite3").write_bytes(b"this is not sqlite" * 100)
    result = invoke("cache", "stats", garbage)
    assert result.exit_code == 2
    assert "cannot open the disk cache" in result.stderr


def test_rate_limits_and_prices(mock: MockServer, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    result = run_cli(
        mock, prompts_file(tmp_path / "in.jsonl", 5), output,
        "--rpm", "60000", "--tpm", "10000000", "--price", "mock-model=1.5,2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "cost       $" in result.stderr


@pytest.mark.parametrize(
    "extra",
    [["--price", "mock-model"], ["--price", "mock-model=1"], ["--price", "m=a,b"],
     ["--price", "m=1,-2"], ["--rpm", "abc"], ["--rpm", "0"], ["--concurrency", "0"],
     ["--timeout", "0"], ["--base-url", "ftp://x"]],
)  # fmt: skip
def test_bad_options_are_usage_errors(mock: MockServer, tmp_path: Path, extra: list[str]) -> None:
    source = prompts_file(tmp_path / "in.jsonl", 2)
    result = run_cli(mock, source, tmp_path / "out.jsonl", *extra)
    assert result.exit_code == 2
    assert "Error" in result.stderr
    assert mock.stats()["requests"] == 0


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("run", tmp_path / "nope.jsonl", "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    source = prompts_file(tmp_path / "in.jsonl", 1)
    assert invoke("run", source).exit_code == 2  # no -o
    same = invoke("run", source, "-o", source)
    assert same.exit_code == 2
    assert "must not be the input" in same.stderr
    assert len(read_jsonl(source)) == 1


def test_api_key_never_appears(mock: MockServer, tmp_path: Path) -> None:
    mock.configure(fail_first=1, fail_first_status=401)
    source = prompts_file(tmp_path / "in.jsonl", 3)
    output = tmp_path / "out.jsonl"
    result = run_cli(mock, source, output)
    assert result.exit_code == 1
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    unreachable = tmp_path / "unreachable.jsonl"
    down = run_cli(mock, source, unreachable, "--base-url", dead, "--retries", "0")
    assert down.exit_code == 1
    assert read_jsonl(unreachable)[0]["error"]["code"] == "APIConnectionError"
    for text in (result.output, down.output, output.read_text(), unreachable.read_text()):
        assert KEY not in text
    assert KEY not in invoke("run", "--help").output


# -- demo, mock-server ---------------------------------------------------------------


def test_demo_runs_offline() -> None:
    result = invoke("demo", "--requests", "120", "--no-progress", "--latency", "0.002")
    assert result.exit_code == 0, result.output
    assert "from the cache" in result.stdout
    assert "checked: all 132 answers" in result.stdout


def test_mock_server_command_serves_until_interrupted() -> None:
    command = [sys.executable, "-m", "fastllm.cli.main", "mock-server", "--port", "0"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout = child.stdout
        assert stdout is not None
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(stdout.readline()))
        reader.start()
        reader.join(60)
        assert first, "the mock server printed nothing"
        base_url = first[0].strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        request = urllib.request.Request(
            base_url + "/chat/completions",
            data=orjson.dumps(chat_line(None, "hello there")["body"]),
            headers={"content-type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as answer:
            body = orjson.loads(answer.read())
        assert body["choices"][0]["message"]["content"] == "hello there"
    finally:
        child.terminate()
        child.wait(10)
    assert child.returncode == 0


def test_mock_server_rejects_bad_options() -> None:
    assert invoke("mock-server", "--fail-500", "2").exit_code == 2
    assert invoke("mock-server", "--fail-500", "0.6", "--fail-429", "0.6").exit_code == 2


# -- split ---------------------------------------------------------------------------


def split_input(path: Path) -> Path:
    lines: list[Any] = []
    for i in range(11):
        lines.append(chat_line(f"a{i}", f"p{i}", "org/model:v1"))
        lines.append(chat_line(f"b{i}", f"p{i}", "small"))
        if i % 2:
            lines.append({"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
                          "body": {"model": "small", "input": f"text {i}"}})  # fmt: skip
    return write_jsonl(path, lines)


def test_split_writes_valid_batch_api_files(tmp_path: Path) -> None:
    source = split_input(tmp_path / "reqs.jsonl")
    out_dir = tmp_path / "parts"
    result = invoke("split", source, "--out-dir", out_dir, "--max-lines", "4",
                    "--max-bytes", "600")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    files = sorted(out_dir.iterdir())
    assert len(result.stdout.splitlines()) == len(files)
    total = 0
    for path in files:
        lines = read_jsonl(path)
        assert 1 <= len(lines) <= 4
        assert path.stat().st_size <= 600
        assert len({(line["url"], line["body"]["model"]) for line in lines}) == 1
        assert len({line["custom_id"] for line in lines}) == len(lines)
        assert all(line["method"] == "POST" for line in lines)
        assert path.name.startswith("reqs.")
        assert f"\t{len(lines)} lines" in result.stdout
        total += len(lines)
    assert total == 11 + 11 + 5
    names = {path.name for path in files}
    assert "reqs.org_model_v1.chat-completions.1.jsonl" in names
    assert "reqs.small.embeddings.1.jsonl" in names
    ids = [line["custom_id"] for path in sorted(out_dir.glob("reqs.small.chat*"),
           key=lambda p: int(p.name.split(".")[-2])) for line in read_jsonl(path)]  # fmt: skip
    assert ids == [f"b{i}" for i in range(11)]  # order kept across parts


def test_split_bad_lines(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl", [chat_line("a", "x"), b"{oops", chat_line("a", "y")]
    )
    out_dir = tmp_path / "parts"
    result = invoke("split", source, "--out-dir", out_dir)
    assert result.exit_code == 1
    assert "line 2" in result.stderr
    assert list(out_dir.iterdir()) == []
    skipped = invoke("split", source, "--out-dir", out_dir, "--skip-bad")
    assert skipped.exit_code == 0
    assert "line 2" in skipped.stderr
    assert "line 3" in skipped.stderr  # duplicate custom_id in one file
    assert [len(read_jsonl(p)) for p in out_dir.iterdir()] == [1]
