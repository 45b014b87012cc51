"""schemathesis against the live admin API document: no 5xx, no answer outside the schema.

The gateway (with Ledger and the demo people) runs on its own event loop in a thread;
schemathesis reads ``/.gatehold/api/openapi.json`` from it and sends schema-conforming
and schema-violating cases for every operation, as a superadmin admin key. The server
is started inside the test, not at import (pytest 9.2 breaks schemathesis' lazy loader,
so the cases are driven through hypothesis directly).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.generation import GenerationMode
from sqlalchemy import text

from gateway.app import ENGINE
from tests.support.admin_api import admin_key
from tests.support.stack import running_stack

CASES_PER_OPERATION = 8
"""Per operation and mode (valid, invalid): 22 operations make about 350 cases."""


@contextmanager
def gateway_in_a_thread(data_dir: Path) -> Iterator[tuple[str, str]]:
    """A running stack served from a thread: (base URL, a superadmin admin key)."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[tuple[str, str]] = concurrent.futures.Future()
    stop = threading.Event()

    async def serve() -> None:
        async with running_stack(data_dir) as stack:
            key = await admin_key(stack, "*")
            async with stack.app[ENGINE].begin() as conn:
                # Far from the small ids generated cases name, so no case revokes it.
                await conn.execute(text("UPDATE api_keys SET id = 900000001 WHERE admin"))
            server = stack.client.server
            ready.set_result((f"http://127.0.0.1:{server.port}", key))
            while not stop.is_set():
                await asyncio.sleep(0.05)

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error)
            raise
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)


def test_the_admin_api_answers_every_generated_case_within_its_schema(tmp_path: Path) -> None:
    with gateway_in_a_thread(tmp_path) as (base_url, key):
        schema = schemathesis.openapi.from_url(f"{base_url}/.gatehold/api/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 48
        headers = {"Authorization": f"Bearer {key}"}
        strategies = [
            operation.as_strategy(generation_mode=mode)
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        checks = [not_a_server_error, response_schema_conformance]
        seen: list[int] = []

        for strategy in strategies:

            @given(case=strategy)
            @settings(
                max_examples=CASES_PER_OPERATION,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                response = case.call_and_validate(
                    base_url=base_url, headers=headers, checks=checks, timeout=10
                )
                seen.append(response.status_code)

            check()
        assert len(seen) >= 200, f"only {len(seen)} cases ran"
        assert 200 in seen and 422 in seen, sorted(set(seen))
