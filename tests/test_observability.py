"""/metrics (Prometheus) and structured logs."""

import json
import logging

from server.observability import configure_logging, request_id_var


async def test_metrics_count_operations_by_name_and_errors_by_code(api, client):
    signed = await api.sign_up()
    await api.ok("query Dashboard { viewer { id } }", token=signed["accessToken"])
    await api.error("query Forbidden { viewer { id } }", token="not-a-token")
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'groups_api_graphql_operations_total{operation="Dashboard"}' in text
    assert 'groups_api_graphql_operation_seconds_bucket{le="0.002",operation="Dashboard"}' in text
    assert 'groups_api_graphql_errors_total{code="UNAUTHENTICATED"}' in text
    assert "groups_api_db_pool_size" in text


def test_logs_are_one_json_object_a_line_with_the_request_id(capsys):
    configure_logging("INFO")
    token = request_id_var.set("req-123")
    try:
        logging.getLogger("groups_api.test").info("hello %s", "world")
    finally:
        request_id_var.reset(token)
        logging.getLogger().handlers[:] = []
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["message"] == "hello world"
    assert record["request_id"] == "req-123"
    assert record["level"] == "INFO"
