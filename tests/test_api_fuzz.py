"""Property-based tests of the API from its own OpenAPI schema (schemathesis + hypothesis).

Every operation, with no credentials, a viewer token and an admin token: no
5xx answer, and every answer has a documented status code and matches its
documented schema. Bounded (a few examples per operation) so CI stays fast.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from caio.api.app import create_app
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv

pytestmark = pytest.mark.slow  # many requests per operation

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = 10


@pytest.mark.parametrize("who", ["nobody", "viewer", "admin"])
def test_every_operation_answers_within_its_schema(update_env: UpdateEnv, who: str) -> None:
    update_env.publish(RUNNING)
    update_env.publish(NEWER)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(update_env.settings))
    headers = {} if who == "nobody" else update_env.auth(who)
    # get_all_operations yields Ok | Err; .ok() raises on an Err (a schema error fails the test)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} == {
        "GET /health",
        "GET /api/v1/version",
        "GET /api/v1/host",
        "GET /api/v1/whoami",
        "POST /api/v1/update",
        "DELETE /api/v1/update",
        "GET /api/v1/update",
        "GET /api/v1/update/events",
        "GET /api/v1/update/check",
        "GET /api/v1/update/history",
        "POST /api/v1/rollback",
        "POST /api/v1/restart",
        "GET /metrics",
    }

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_within_schema(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        answers_within_schema()
