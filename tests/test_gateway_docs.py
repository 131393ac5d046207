"""The gateway's documentation, as a hospital's developer on a bureau intranet uses it:
``/docs`` and ``/redoc`` load every file from the gateway itself, the OpenAPI document
describes every operation and field with examples, and every example request succeeds
against the demo data ``doudi run`` loads.

One platform per backend, loaded with the demo data, serves the module; the example
settlement is the first its demo person is given, so its figures are the documented
ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from pydantic import BaseModel

from doudi.cli import demo
from gateway import schemas
from tests.platform import Platform, demo_platforms
from tests.support import business_day

YEAR = business_day().year
HOSPITAL_KEY = demo.HOSPITALS[0].api_key  # demo-xixia-2
PROBLEM_JSON = "application/problem+json"
CONTENT_TYPES = {
    ".js": "javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}
"""What each kind of asset must be served as (a prefix or part of Content-Type)."""
_URL = re.compile(r"""https?://[^\s"'<>)]+""")
_QUOTED_PATH = re.compile(r"""["'](/[^"'\s]*)["']""")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "docs", YEAR) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


@pytest.fixture
def sqlite_platform(platforms: Callable[[str], Platform]) -> Platform:
    return platforms("sqlite")


class _Assets(HTMLParser):
    """The URLs a page names: script src, link href, ReDoc's spec-url, and the paths
    quoted in inline scripts (Swagger UI's ``url: '/openapi.json'``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "redoc": "spec-url", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls.extend(_QUOTED_PATH.findall(data))


def page_assets(page: httpx.Response) -> list[str]:
    parser = _Assets()
    parser.feed(page.text)
    return parser.urls


def test_the_docs_pages_load_every_file_from_the_gateway(sqlite_platform: Platform) -> None:
    client = sqlite_platform.client()
    gateway = urlsplit(sqlite_platform.base_url).netloc

    root = client.get("/")
    assert root.status_code in (302, 307)
    assert root.headers["location"] == "/docs"

    named: dict[str, list[str]] = {}
    for page_path in ("/docs", "/redoc"):
        page = client.get(page_path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # Even what the bundles would fetch by themselves is refused by the browser.
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.headers["content-security-policy"]
        assert "https://" not in page.headers["content-security-policy"]
        elsewhere = [url for url in _URL.findall(page.text) if urlsplit(url).netloc != gateway]
        assert elsewhere == [], f"{page_path} names other hosts"
        named[page_path] = page_assets(page)

    # The pages name their scripts, stylesheet, favicon and document.
    assert any(url.endswith("swagger-ui-bundle.js") for url in named["/docs"])
    assert any(url.endswith(".css") for url in named["/docs"])
    assert any(url.endswith("redoc.standalone.js") for url in named["/redoc"])
    assert all(any(url.endswith(".png") for url in urls) for urls in named.values())
    assert all("/openapi.json" in urls for urls in named.values())
    for page_path, urls in named.items():
        for url in urls:
            absolute = urljoin(f"{sqlite_platform.base_url}{page_path}", url)
            assert urlsplit(absolute).netloc == gateway
            asset = client.get(absolute)
            assert asset.status_code == 200, absolute
            kind = CONTENT_TYPES[re.sub(r".*(\.[a-z]+)$", r"\1", urlsplit(absolute).path)]
            assert kind in asset.headers["content-type"], (absolute, asset.headers)
            assert len(asset.content) > 1000, absolute


def _schema_models() -> dict[str, type[BaseModel]]:
    return {
        name: model
        for name, model in vars(schemas).items()
        if isinstance(model, type)
        and issubclass(model, BaseModel)
        and model.__module__ == schemas.__name__
    }


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def _examples(media: dict[str, Any]) -> list[Any]:
    return [example["value"] for example in media.get("examples", {}).values()]


def test_every_operation_and_field_is_described_with_examples(
    sqlite_platform: Platform,
) -> None:
    document = sqlite_platform.client().get("/openapi.json").json()
    models = _schema_models()

    operations = list(_operations(document))
    assert {path for _, path, _ in operations} >= {
        "/v1/settlements",
        "/v1/settlements/preview",
        "/v1/settlements/{settlement_id}",
        "/v1/settlements/{settlement_id}/reversal",
        "/v1/clearing",
        "/healthz",
        "/readyz",
        "/livez",
    }
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert len(operation.get("description", "")) > 80, where
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (where, parameter["name"])
            assert parameter.get("examples"), (where, parameter["name"])
        if "requestBody" in operation:
            for media in operation["requestBody"]["content"].values():
                body_model = models[media["schema"]["$ref"].rsplit("/", 1)[1]]
                for value in _examples(media) or pytest.fail(f"{where}: no body example"):
                    body_model.model_validate(value)
        assert any(status.startswith("2") for status in operation["responses"]), where
        for status, response in operation["responses"].items():
            assert response.get("description"), (where, status)
            assert response.get("content"), (where, status)
            for media_type, media in response["content"].items():
                values = _examples(media)
                assert values, (where, status, media_type)
                model = models[media["schema"]["$ref"].rsplit("/", 1)[1]]
                for value in values:
                    model.model_validate(value)
                    if media_type == PROBLEM_JSON:
                        assert value["status"] == int(status), (where, status)
                        assert value["type"].startswith("urn:doudi:problem:"), (where, status)

    for name, schema in document["components"]["schemas"].items():
        properties = schema.get("properties", {})
        assert properties, name
        for field, described in properties.items():
            assert described.get("description"), f"{name}.{field}"
    # The national summary's amounts say what they are, in Chinese too, and in what unit.
    for field, described in document["components"]["schemas"]["SummaryRead"]["properties"].items():
        assert _CJK.search(described["description"]), field
        assert "yuan" in described["description"].lower(), field
        assert "two decimals" in described["description"], field


def _success(operation: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    ((status, response),) = (
        (status, response)
        for status, response in operation["responses"].items()
        if status.startswith("2")
    )
    return int(status), response


def _example(holder: dict[str, Any]) -> Any:
    return next(iter(holder["examples"].values()))["value"]


def _resolve(expression: str, answer: Any) -> Any:
    """A link's ``$response.body#/pointer`` in ``answer``."""
    prefix = "$response.body#"
    assert expression.startswith(prefix), expression
    value = answer
    for part in expression.removeprefix(prefix).strip("/").split("/"):
        value = value[int(part) if isinstance(value, list) else part]
    return value


def test_every_request_example_succeeds_against_the_demo_data(platform: Platform) -> None:
    client = platform.client()
    document = client.get("/openapi.json").json()
    operations = {
        operation["operationId"]: (method, path, operation)
        for method, path, operation in _operations(document)
    }
    # Links say where a parameter comes from (a settlement's id): their targets run after
    # the operations whose answers give them.
    links = {
        link["operationId"]: (source, link["parameters"])
        for source, (_, _, operation) in operations.items()
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    }
    assert set(links) == {
        "get_settlement",
        "reverse_settlement",
        "get_admission",
        "cancel_admission",
    }
    order = sorted(operations, key=lambda operation_id: operation_id in links)
    answers: dict[str, Any] = {}

    for operation_id in order:
        method, path, operation = operations[operation_id]
        values = {
            parameter["name"]: _example(parameter) for parameter in operation.get("parameters", [])
        }
        if operation_id in links:
            source, parameters = links[operation_id]
            values.update(
                {
                    name: _resolve(expression, answers[source])
                    for name, expression in parameters.items()
                }
            )
        kinds = {
            parameter["name"]: parameter["in"] for parameter in operation.get("parameters", [])
        }
        headers = {name: str(value) for name, value in values.items() if kinds[name] == "header"}
        if operation.get("security"):
            headers["Authorization"] = f"Bearer {HOSPITAL_KEY}"
        body = None
        if "requestBody" in operation:
            body = _example(operation["requestBody"]["content"]["application/json"])
        answer = client.request(
            method,
            path.format(**{name: value for name, value in values.items() if kinds[name] == "path"}),
            params={name: value for name, value in values.items() if kinds[name] == "query"},
            headers=headers,
            json=body,
        )

        status, success = _success(operation)
        assert answer.status_code == status, (operation_id, answer.text)
        assert answer.headers["content-type"] == "application/json"
        answers[operation_id] = answer.json()
        documented = _example(success["content"]["application/json"])
        assert answers[operation_id].keys() == documented.keys(), operation_id

    # The documented figures are the platform's: the worked example's settlement (the
    # demo person's first of the year), and the day's clearing after it.
    settled, documented = (
        answers["settle"],
        _example(_success(operations["settle"][2])[1]["content"]["application/json"]),
    )
    varying = {"id", "settled_at"}
    assert {k: v for k, v in settled.items() if k not in varying} == {
        k: v for k, v in documented.items() if k not in varying
    }
    assert answers["daily_clearing"] == _example(
        _success(operations["daily_clearing"][2])[1]["content"]["application/json"]
    )
    assert answers["reverse_settlement"]["state"] == "reversed"
    assert answers["get_settlement"]["id"] == settled["id"]


def _error_example(document: dict[str, Any], path: str, method: str, status: int, name: str) -> Any:
    media = document["paths"][path][method]["responses"][str(status)]["content"][PROBLEM_JSON]
    return media["examples"][name]["value"]


def test_the_error_examples_are_what_the_gateway_answers(sqlite_platform: Platform) -> None:
    """Each error example a request can bring about, brought about: the same type, title,
    status and fields. The conflict is another demo hospital's and person's, so that the
    demo person's settlement and the demo hospital's day stay those documented."""
    township = sqlite_platform.client(demo.HOSPITALS[1].api_key)
    document = township.get("/openapi.json").json()
    settle = document["paths"]["/v1/settlements"]["post"]
    key = _example(settle["parameters"][0])
    bill = _example(settle["requestBody"]["content"]["application/json"])
    neighbour = {**bill, "person_id": demo.NEIGHBOUR.person_id}
    assert (
        township.post(
            "/v1/settlements", json=neighbour, headers={"Idempotency-Key": key}
        ).status_code
        == 201
    )
    other_visit = {**neighbour, "visit": {**bill["visit"], "id": "another"}}
    to_reverse = {**neighbour, "visit": {**bill["visit"], "id": "to-reverse"}}
    reversed_id = township.post(
        "/v1/settlements", json=to_reverse, headers={"Idempotency-Key": "errors-6"}
    ).json()["id"]
    undo = township.post(
        f"/v1/settlements/{reversed_id}/reversal", headers={"Idempotency-Key": "errors-6-undo"}
    )
    assert undo.status_code == 200, undo.text
    negative = {
        **bill,
        "visit": {**bill["visit"], "items": [{"code": "X01", "class": "A", "amount_fen": -1}]},
    }
    json_body = {"content-type": "application/json", "Idempotency-Key": "errors-1"}

    cases: list[tuple[str, str, int, str, Callable[[], httpx.Response]]] = [
        (
            "/v1/settlements",
            "post",
            400,
            "malformed",
            lambda: township.post("/v1/settlements", content=b"{", headers=json_body),
        ),
        (
            "/v1/settlements",
            "post",
            400,
            "no_key",
            lambda: township.post("/v1/settlements", json=bill),
        ),
        (
            "/v1/settlements",
            "post",
            409,
            "visit_settled",
            lambda: township.post(
                "/v1/settlements", json=neighbour, headers={"Idempotency-Key": "errors-2"}
            ),
        ),
        (
            "/v1/settlements",
            "post",
            413,
            "too_large",
            lambda: township.post("/v1/settlements", content=b" " * 2_000_000, headers=json_body),
        ),
        (
            "/v1/settlements",
            "post",
            415,
            "not_json",
            lambda: township.post(
                "/v1/settlements",
                content=b"{}",
                headers={"content-type": "text/plain", "Idempotency-Key": "errors-3"},
            ),
        ),
        (
            "/v1/settlements",
            "post",
            422,
            "invalid_field",
            lambda: township.post(
                "/v1/settlements", json=negative, headers={"Idempotency-Key": "errors-4"}
            ),
        ),
        (
            "/v1/settlements",
            "post",
            422,
            "unknown_person",
            lambda: township.post(
                "/v1/settlements",
                json={**bill, "person_id": "110101199003074477"},
                headers={"Idempotency-Key": "errors-5"},
            ),
        ),
        (
            "/v1/settlements",
            "post",
            422,
            "key_reused",
            lambda: township.post(
                "/v1/settlements", json=other_visit, headers={"Idempotency-Key": key}
            ),
        ),
        (
            "/v1/settlements",
            "post",
            401,
            "unknown_key",
            lambda: sqlite_platform.client("not-a-key").post(
                "/v1/settlements", json=bill, headers={"Idempotency-Key": key}
            ),
        ),
        (
            "/v1/settlements/{settlement_id}",
            "get",
            404,
            "not_found",
            lambda: township.get("/v1/settlements/00000000-0000-0000-0000-000000000000"),
        ),
        (
            "/v1/settlements/{settlement_id}",
            "get",
            400,
            "bad_id",
            lambda: township.get(f"/v1/settlements/{'x' * 37}"),
        ),
        (
            "/v1/settlements/{settlement_id}/reversal",
            "post",
            409,
            "already_reversed",
            lambda: township.post(
                f"/v1/settlements/{reversed_id}/reversal", headers={"Idempotency-Key": "errors-7"}
            ),
        ),
        (
            "/v1/clearing",
            "get",
            400,
            "bad_date",
            lambda: township.get("/v1/clearing", params={"date": "0"}),
        ),
    ]
    for path, method, status, name, send in cases:
        documented = _error_example(document, path, method, status, name)
        answer = send()
        assert answer.status_code == status, (name, answer.text)
        assert answer.headers["content-type"] == PROBLEM_JSON, name
        found = answer.json()
        for key_name in ("type", "title", "status"):
            assert found[key_name] == documented[key_name], (name, found)
        for key_name in ("settlement_id", "reversal_idempotency_key", "reversed_at"):
            assert (key_name in found) == (key_name in documented), (name, key_name)
        fields = [(error["field"], "pointer" in error) for error in found.get("errors", [])]
        assert fields == [
            (error["field"], "pointer" in error) for error in documented.get("errors", [])
        ], name
