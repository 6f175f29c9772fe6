"""The pytest plugin, used as its users would: pytester runs their test files."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_a_user_asserts_what_their_client_did(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from openai import OpenAI

        @pytest.mark.fakeai(models=["my-model"])
        def test_three_streams_and_no_retries(fakeai_server):
            client = OpenAI(base_url=fakeai_server.openai_base_url, api_key="unused", max_retries=0)
            for _ in range(3):
                stream = client.chat.completions.create(
                    model="my-model", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True)
                assert len([chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content]) == 4
            seen = fakeai_server.snapshot()
            chat = seen.endpoints["/v1/chat/completions"]
            assert chat.requests_total == 3 and chat.errors_total == {}
            assert seen.streaming.completed_streams == 3
            assert fakeai_server.metrics()["totals"]["/v1/chat/completions"]["completion_tokens"] == 12
            assert fakeai_server.settings.zero_latency, "answers come at once unless a test asks otherwise"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_settings_per_test_errors_latency_and_several_servers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time
        import httpx
        import pytest

        BODY = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

        @pytest.mark.fakeai(fail_first=2, error_kinds=["rate_limit"])
        def test_injected_errors(fakeai_server):
            url = fakeai_server.base_url + "/v1/chat/completions"
            assert [httpx.post(url, json=BODY).status_code for _ in range(3)] == [429, 429, 200]
            assert fakeai_server.snapshot().endpoints["/v1/chat/completions"].errors_total == {429: 2}

        @pytest.mark.fakeai(zero_latency=False, ttft_ms=150, itl_ms=0, ttft_jitter=0, prefill_ms_per_token=0)
        def test_latency(fakeai_server):
            started = time.perf_counter()
            httpx.post(fakeai_server.base_url + "/v1/chat/completions", json=BODY).raise_for_status()
            assert time.perf_counter() - started >= 0.15

        def test_two_servers_do_not_share_numbers(fakeai_server, fakeai_server_factory):
            other = fakeai_server_factory(models=["elsewhere"])
            httpx.post(fakeai_server.base_url + "/v1/chat/completions", json=BODY).raise_for_status()
            assert other.base_url != fakeai_server.base_url
            assert other.snapshot().endpoints == {}
            assert httpx.get(other.base_url + "/v1/models").json()["data"][0]["id"] == "elsewhere"

        @pytest.mark.fakeai(no_such_setting=1)
        def test_a_wrong_setting_is_an_error(fakeai_server):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*no_such_setting*"])


def test_the_fixture_leaves_the_test_process_as_it_was(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import gc
        import logging
        import signal
        import weakref

        import httpx
        import pytest

        SIGNALS = [number for number in signal.Signals if number not in (signal.SIGKILL, signal.SIGSTOP)]
        UNTOUCHED_LOGGER = (logging.NOTSET, (), True, False, ())


        def described(logger):
            return (logger.level, tuple(logger.handlers), logger.propagate, logger.disabled, tuple(logger.filters))


        def process_state():
            return {
                "garbage collector": (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()),
                "signal handlers": {number: signal.getsignal(number) for number in SIGNALS},
                "root logger": described(logging.getLogger()),
                "loggers": {name: described(logger) for name, logger in logging.Logger.manager.loggerDict.items()
                            if isinstance(logger, logging.Logger)},
                "level 5": logging.getLevelName(5),
                "logging.disable": logging.root.manager.disable,
                "event loop policy": type(asyncio.get_event_loop_policy()),
            }


        def assert_same(before, now):
            for key, value in before.items():
                if key != "loggers":
                    assert now[key] == value, key
            for name, state in now["loggers"].items():  # a logger made since (by an import) is left untouched
                assert state == before["loggers"].get(name, UNTOUCHED_LOGGER), name


        class Node:
            pass


        @pytest.mark.parametrize("subprocess", [False, True])
        def test_my_objects_and_my_process_settings_are_mine(fakeai_server_factory, subprocess):
            mine = Node()
            mine.itself = mine  # a cycle: only the garbage collector frees it
            collectable = weakref.ref(mine)
            before = process_state()
            server = fakeai_server_factory(subprocess=subprocess)
            reply = httpx.post(server.openai_base_url + "/chat/completions", json={
                "model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            assert reply.status_code == 200
            assert server.snapshot().endpoints["/v1/chat/completions"].requests_total == 1
            assert_same(before, process_state())
            server.stop()
            assert_same(before, process_state())
            del mine
            gc.collect()
            assert collectable() is None, "frozen out of the garbage collector's sight"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_server_in_a_process_of_its_own_for_timing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        import time

        import httpx
        import pytest
        from openai import OpenAI

        from fakeai.metrics import MetricsSnapshot

        PROCESSES = []
        CHAT = "/v1/chat/completions"


        @pytest.mark.fakeai(subprocess=True, zero_latency=False, ttft_ms=120, itl_ms=30, ttft_jitter=0,
                            itl_jitter=0, prefill_ms_per_token=0, models=["timed"])
        def test_paced_by_a_server_of_its_own(fakeai_server):
            assert fakeai_server.process.pid != os.getpid() and fakeai_server.process.poll() is None
            PROCESSES.append(fakeai_server.process)
            client = OpenAI(base_url=fakeai_server.openai_base_url, api_key="unused", max_retries=0)
            started = time.perf_counter()
            stream = client.chat.completions.create(
                model="timed", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True,
                extra_body={"ignore_eos": True})
            arrivals = [time.perf_counter() - started for chunk in stream
                        if chunk.choices and chunk.choices[0].delta.content]
            assert len(arrivals) == 4
            assert arrivals[0] >= 0.12 and arrivals[-1] >= 0.12 + 3 * 0.03  # never early
            seen = fakeai_server.snapshot()
            assert isinstance(seen, MetricsSnapshot)
            assert seen.endpoints[CHAT].requests_total == 1 and seen.streaming.completed_streams == 1
            assert seen.streaming.ttft.count == 1 and seen.streaming.ttft.min >= 0.12
            assert fakeai_server.metrics()["totals"][CHAT]["completion_tokens"] == 4
            assert fakeai_server.settings.ttft_ms == 120
            assert f"Serving on {fakeai_server.base_url}, the socket inherited as --fd" in fakeai_server.log()


        def test_its_process_stopped_cleanly_after_its_test():
            assert [process.returncode for process in PROCESSES] == [0]


        def test_several_workers_and_counted_scrapes(fakeai_server_factory):
            server = fakeai_server_factory(subprocess=True, workers=2, record_monitoring=True)
            for _ in range(4):
                httpx.post(server.base_url + CHAT, json={
                    "model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]}).raise_for_status()
            # a request is recorded after its answer went out, and another worker may answer the
            # next scrape first: the counts are awaited (the scrapes themselves are counted too)
            def counted():
                endpoints = server.snapshot().endpoints
                return CHAT in endpoints and endpoints[CHAT].requests_total == 4 and "/metrics/snapshot" in endpoints

            deadline = time.monotonic() + 10
            while not counted():
                assert time.monotonic() < deadline, "the 4 chats and the scrapes were not all counted"
                time.sleep(0.01)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_test_changes_the_running_server_and_waits_for_it_to_load(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx
        import pytest
        from fakeai.api.errors import APIError

        BODY = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

        @pytest.mark.parametrize("subprocess", [False, True])
        def test_configure(fakeai_server_factory, subprocess):
            fakeai_server = fakeai_server_factory(subprocess=subprocess, error_kinds=["server_error"])
            url = fakeai_server.base_url + "/v1/chat/completions"
            assert httpx.post(url, json=BODY).status_code == 200
            view = fakeai_server.configure(error_rate=1.0)
            assert view["generation"] == 1 and view["settings"]["error_rate"] == 1.0
            assert httpx.post(url, json=BODY).status_code == 500
            with pytest.raises(APIError):
                fakeai_server.configure(error_rate=3.0)
            fakeai_server.configure(error_rate=0)
            assert httpx.post(url, json=BODY).status_code == 200
            assert fakeai_server.reset_prefix_cache()["prefix_cache_resets"] == 1

        @pytest.mark.parametrize("subprocess", [False, True])
        def test_wait_until_ready(fakeai_server_factory, subprocess):
            fakeai_server = fakeai_server_factory(subprocess=subprocess, startup_seconds=1.0)
            fakeai_server.wait_until_ready()
            assert httpx.get(fakeai_server.base_url + "/health").status_code == 200
            assert httpx.post(fakeai_server.base_url + "/v1/chat/completions", json=BODY).status_code == 200
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_each_server_binds_its_port_once_and_serves_on_that_socket(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import socket

        import httpx
        import pytest


        @pytest.mark.parametrize("subprocess", [False, True])
        def test_one_bind(fakeai_server_factory, monkeypatch, subprocess):
            binds = []
            real = socket.socket.bind

            def bind(self, address):
                binds.append(address)
                return real(self, address)

            monkeypatch.setattr(socket.socket, "bind", bind)
            server = fakeai_server_factory(subprocess=subprocess)
            assert binds == [("127.0.0.1", 0)], "no port picked, released and bound again"
            monkeypatch.undo()
            httpx.get(server.base_url + "/health/live").raise_for_status()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
