"""The kbroker command: settings precedence, one-line startup errors, a real run."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest
import trio

from kbroker.cli import _parser, build_config, main
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import MetadataRequest
from tests.kbroker.conftest import RawClient
from tests.kbroker.helpers import kbroker_process, read_until

ROOT = Path(__file__).resolve().parents[2]


def _config(*argv: str):
    return build_config(_parser().parse_args(list(argv)))


def test_defaults() -> None:
    config = _config()
    assert (config.listener.host, config.listener.port) == ("127.0.0.1", 9092)
    assert config.data_dir == Path("./kbroker-data")


def test_flags_win_over_overrides_over_file(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    props.write_text(
        "listeners=PLAINTEXT://0.0.0.0:9999\nlog.dirs=/from/file\n"
        "num.partitions=2\nlog.retention.hours=1\n"
    )
    from_file = _config("--config", str(props))
    assert (from_file.listener.host, from_file.listener.port) == ("0.0.0.0", 9999)
    assert from_file.data_dir == Path("/from/file")
    assert from_file["num.partitions"] == 2
    config = _config(
        "--config",
        str(props),
        "--override",
        "num.partitions=5",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path / "d"),
    )
    assert (config.listener.host, config.listener.port) == ("127.0.0.1", 0)
    assert config.data_dir == tmp_path / "d"
    assert config["num.partitions"] == 5
    assert config.log_retention_ms == 3600000


def test_http_listener_flag_and_key() -> None:
    off = _config()
    assert off["kbroker.http.listener"] is None
    assert off["kbroker.http.console.actions"] is False
    on = _config("--http", "127.0.0.1:8080", "--http-actions")
    assert on["kbroker.http.listener"] == "127.0.0.1:8080"
    assert on["kbroker.http.console.actions"] is True
    keyed = _config("--override", "kbroker.http.listener=0.0.0.0:9000")
    assert keyed["kbroker.http.listener"] == "0.0.0.0:9000"
    # The flag wins over the key, as --listen wins over listeners.
    both = _config("--override", "kbroker.http.listener=0.0.0.0:9000", "--http", ":8081")
    assert both["kbroker.http.listener"] == ":8081"


def test_ipv6_listen() -> None:
    assert _config("--listen", "::1:9093").listener.host == "::1"
    assert _config("--listen", "[::1]:9093").listener.port == 9093


def _run_main(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--override", "no.such.key=1"], "unknown config key 'no.such.key'"),
        (["--override", "log.retention.hour=1"], "(did you mean log.retention.hours?)"),
        (["--override", "delegation.token.secret.key=x"], "is not supported"),
        (["--override", "num.partitions=many"], "num.partitions"),
        (["--override", "novalue"], "KEY=VALUE"),
        (["--listen", "nohostport"], "HOST:PORT"),
        (["--config", "/nonexistent/server.properties"], "cannot read config file"),
    ],
)
def test_config_errors_are_one_line(capsys, tmp_path: Path, argv: list[str], fragment: str) -> None:
    code, err = _run_main(capsys, "--data-dir", str(tmp_path / "d"), *argv)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("kbroker:")]
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


def test_unwritable_data_dir(capsys, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, err = _run_main(capsys, "--listen", "127.0.0.1:0", "--data-dir", str(blocker / "data"))
    assert code == 1
    assert "cannot use data dir" in err and "Traceback" not in err


def test_port_in_use(capsys, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _run_main(
            capsys, "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")
        )
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_help_documents_the_options(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--listen",
        "--data-dir",
        "--config",
        "--override",
        "bootstrap_servers",
        "127.0.0.1:9092",
        "./kbroker-data",
    ):
        assert option in out


def test_list_configs(capsys) -> None:
    assert main(["--list-configs"]) == 0
    out = capsys.readouterr().out
    assert "num.partitions (int, default 1)" in out
    assert "log.retention.check.interval.ms" in out


async def test_real_process_start_serve_and_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with trio.fail_after(60):  # a guard against hanging forever, not a speed assertion
        async with kbroker_process(tmp_path, data, "--override", "num.partitions=2") as process:
            seen = bytearray()
            line = await read_until(process.stderr, b"bootstrap_servers=", seen)
            host, port = line.split("=", 1)[1].split()[0].rsplit(":", 1)
            assert host == "127.0.0.1" and int(port) > 0
            assert seen.count(b"bootstrap_servers=") == 1
            client = RawClient(await trio.open_tcp_stream(host, int(port)))
            response = await client.request(
                MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="cli-topic")])
            )
            assert response.topics[0].error_code == ErrorCode.NONE
            assert len(response.topics[0].partitions) == 2
            assert response.brokers[0].port == int(port)
            process.send_signal(signal.SIGTERM)
            assert await client.receive_raw() is None  # idle connection closed on shutdown
            while await process.stderr.receive_some(4096):
                pass
            assert await process.wait() == 0
    assert (data / "cli-topic-0" / ".kafka_cleanshutdown").exists()
    assert (data / "meta.properties").exists()


async def test_json_logs_and_http_listener_of_a_real_process(tmp_path: Path) -> None:
    with trio.fail_after(60):  # a guard against hanging forever, not a speed assertion
        async with kbroker_process(
            tmp_path, tmp_path / "data", "--http", "127.0.0.1:0", "--log-format", "json"
        ) as process:
            seen = bytearray()
            await read_until(process.stderr, b"bootstrap_servers=", seen)
            process.send_signal(signal.SIGTERM)
            while chunk := await process.stderr.receive_some(4096):
                seen += chunk
            assert await process.wait() == 0
    entries = [json.loads(line) for line in seen.decode().splitlines() if line.strip()]
    assert entries and all(set(e) >= {"ts", "level", "logger", "message"} for e in entries)
    messages = [e["message"] for e in entries]
    (http_line,) = [
        m for m in messages if m.startswith("HTTP console and metrics on http://127.0.0.1:")
    ]
    assert http_line.endswith("/")
    assert any(m.startswith("kbroker ready bootstrap_servers=127.0.0.1:") for m in messages)
    assert any(m == "SIGTERM received: shutting down" for m in messages)
