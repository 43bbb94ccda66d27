"""`/openapi.json` is precise enough for tools to trust: jobs' inputs typed, every answer declared,
`/trigger` linked to the run routes (tests/test_fuzz.py holds the server to it)."""

from __future__ import annotations

import re
from typing import Any

from durably_reflex._params import MAX_FILTER_VALUES, MAX_OFFSET
from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    LiveServer,
    Serve,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)


async def document(server: LiveServer, **options: Any) -> dict[str, Any]:
    return assert_json(await server.client.get("/openapi.json", **options), 200)


def schema_of(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    return doc["components"]["schemas"][ref.removeprefix("#/components/schemas/")]


async def test_the_document_is_valid_openapi_3_1(serve: Serve) -> None:
    import openapi_spec_validator as validator

    validator.validate(await document(await serve(start_worker=False)))


async def test_the_trigger_body_is_one_schema_per_job_chosen_by_job_name(serve: Serve) -> None:
    doc = await document(await serve(start_worker=False))
    body = doc["paths"]["/trigger"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    mapping = body["discriminator"]["mapping"]
    assert body["discriminator"]["propertyName"] == "jobName"
    assert set(mapping) == {"import-rows", "script", "progress-burst", "stepped-progress", "no-input"}
    assert [branch["$ref"] for branch in body["oneOf"]] == list(mapping.values())
    import_rows = schema_of(doc, mapping["import-rows"])
    assert import_rows["properties"]["jobName"] == {"const": "import-rows"}
    assert import_rows["required"] == ["jobName", "input"]  # its model has required fields
    rows = schema_of(doc, import_rows["properties"]["input"]["$ref"])["properties"]["rows"]
    assert schema_of(doc, rows["items"]["$ref"])["required"] == ["name"]  # `$defs` became components
    assert schema_of(doc, mapping["script"])["required"] == ["jobName"]  # every field has a default


async def test_every_operation_declares_its_errors_with_a_code_and_503_with_retry_after(serve: Serve) -> None:
    doc = await document(await serve(start_worker=False))
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "code"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"200", "401", "503"} <= set(responses), (path, method)
            assert "Retry-After" in responses["503"]["headers"], (path, method)
            if method in ("post", "delete"):
                assert "415" in responses, (path, method)


async def test_parameters_carry_the_servers_bounds(serve: Serve) -> None:
    doc = await document(await serve(start_worker=False))
    parameters = {parameter["name"]: parameter for parameter in doc["paths"]["/runs"]["get"]["parameters"]}
    assert parameters["offset"]["schema"]["maximum"] == MAX_OFFSET
    assert parameters["jobName"]["schema"]["maxItems"] == MAX_FILTER_VALUES
    assert parameters["jobName"]["schema"]["items"]["maxLength"] == 255


async def test_trigger_links_its_run_id_to_the_run_routes(serve: Serve) -> None:
    doc = await document(await serve(start_worker=False))
    links = doc["paths"]["/trigger"]["post"]["responses"]["200"]["links"]
    operation_ids = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert {link["operationId"] for link in links.values()} == {
        "getRun", "getSteps", "getLogs", "getAttempts", "subscribeRun", "retryRun", "cancelRun", "deleteRun"
    } <= operation_ids  # fmt: skip
    assert all(link["parameters"] == {"runId": "$response.body#/runId"} for link in links.values())


async def test_the_document_types_only_the_jobs_the_caller_may_see(serve: Serve) -> None:
    auth = DurablyAuth(authenticate=lambda request: "ann", visible_jobs=lambda caller: ["script"])
    doc = await document(await serve(auth=auth, start_worker=False))
    body = doc["paths"]["/trigger"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["discriminator"]["mapping"]) == {"script"}
    assert not any("import" in name for name in doc["components"]["schemas"])


async def test_the_search_parameters_and_bulk_bodies_carry_the_servers_rules(serve: Serve) -> None:
    doc = await document(await serve(start_worker=False))
    parameters = {parameter["name"]: parameter for parameter in doc["paths"]["/runs"]["get"]["parameters"]}
    labels = parameters["label"]  # `label.<key>=<value>`: an object whose properties are parameters
    assert (labels["style"], labels["explode"], labels["schema"]["additionalProperties"]) == ("form", True, False)
    (pattern,) = labels["schema"]["patternProperties"]
    assert re.fullmatch(pattern, "label.customer") and not re.fullmatch(pattern, "label.bad key")
    assert {"idPrefix", "createdAfter", "createdBefore", "input", "replayOf"} <= set(parameters)
    streamed = doc["paths"]["/runs/subscribe"]["get"]["parameters"]
    assert "label" in {parameter["name"] for parameter in streamed}
    for action in ("retry", "cancel", "delete"):
        operation = doc["paths"][f"/bulk/{action}"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["oneOf"] == [{"required": ["runIds"]}, {"required": ["filter"]}]
        assert body["properties"]["filter"]["additionalProperties"] is False  # a misspelt filter is refused
        assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    trigger = doc["paths"]["/trigger"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert trigger["required"] == ["runId", "disposition"]
    assert {"Attempt", "BulkResult"} <= set(doc["components"]["schemas"])
    assert {"labels", "replayOf"} <= set(doc["components"]["schemas"]["Run"]["properties"])
