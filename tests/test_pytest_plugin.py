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


def test_a_test_changes_the_running_server_and_waits_for_it_to_load(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx
        import pytest
        from fakeai.api.errors import APIError

        BODY = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

        @pytest.mark.fakeai(error_kinds=["server_error"])
        def test_configure(fakeai_server):
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

        @pytest.mark.fakeai(startup_seconds=1.0)
        def test_wait_until_ready(fakeai_server):
            fakeai_server.wait_until_ready()
            assert httpx.get(fakeai_server.base_url + "/health").status_code == 200
            assert httpx.post(fakeai_server.base_url + "/v1/chat/completions", json=BODY).status_code == 200
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
