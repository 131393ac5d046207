"""The API documentation: ``/docs`` (Swagger UI), ``/redoc`` (ReDoc), ``/openapi.json``,
and ``GET /``, which leads to ``/docs``.

Both pages load everything from the gateway itself, for a bureau's intranet has
no internet: Swagger UI's and ReDoc's files (JavaScript, CSS, the favicon) come
from the ``fastapi-offline`` package installed with the gateway and are served
under :data:`ASSETS_PATH`; ReDoc goes without Google's fonts, and Swagger UI
without its online validator.

The OpenAPI document is FastAPI's, plus what FastAPI cannot see (the request
body the bill views read themselves, the API key every ``/v1`` operation needs,
errors as problem+json) and the examples of :mod:`gateway.examples`, computed
when the application is made (the day the gateway starts).
"""

from __future__ import annotations

import datetime
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from gateway.deps import BEARER_SCHEME, BEARER_SCHEME_NAME
from gateway.examples import OperationExamples, business_day, operation_examples
from gateway.problems import PROBLEM_JSON
from gateway.schemas import AdmissionCreate, ProblemRead, SettlementCreate

ASSETS_PATH: Final = "/docs-assets"
ASSETS_PACKAGE: Final = ("fastapi_offline", "static")
"""Swagger UI's and ReDoc's distribution files, as the package installs them."""
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        # Swagger UI starts from an inline script; both pages style themselves inline.
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        # ReDoc's search runs in a worker made from a blob.
        "worker-src 'self' blob:",
    )
)
"""The pages' Content-Security-Policy: nothing from another host, not even what the
bundles would fetch by themselves (ReDoc's footer logo)."""
SWAGGER_UI_PARAMETERS: Final = {
    # Swagger UI would otherwise send the document to validator.swagger.io for a badge.
    "validatorUrl": None,
    "tryItOutEnabled": True,
    "displayRequestDuration": True,
}


def install(app: FastAPI, day: datetime.date | None = None) -> None:
    """Serve ``app``'s documentation, with request examples for ``day`` (by default the
    business day now)."""
    examples = operation_examples(day or business_day())
    app.mount(ASSETS_PATH, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/docs")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _self_contained(
            get_swagger_ui_html(
                openapi_url=openapi_url(request),
                title=f"{app.title}: API",
                swagger_js_url=asset(request, "swagger-ui-bundle.js"),
                swagger_css_url=asset(request, "swagger-ui.css"),
                swagger_favicon_url=asset(request, "favicon.png"),
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return _self_contained(
            get_redoc_html(
                openapi_url=openapi_url(request),
                title=f"{app.title}: API",
                redoc_js_url=asset(request, "redoc.standalone.js"),
                redoc_favicon_url=asset(request, "favicon.png"),
                with_google_fonts=False,
            )
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app, examples)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _self_contained(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def openapi_document(app: FastAPI, examples: dict[str, OperationExamples]) -> dict[str, Any]:
    """FastAPI's document, plus what it cannot see: the request body the views read
    themselves, the API key every ``/v1`` operation needs, errors as problem+json, and
    every operation's ``examples``."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER_SCHEME_NAME] = BEARER_SCHEME
    schemas = components.setdefault("schemas", {})
    for model in (SettlementCreate, AdmissionCreate):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    problem_ref = f"#/components/schemas/{ProblemRead.__name__}"
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if path.startswith("/v1/"):
                operation["security"] = [{BEARER_SCHEME_NAME: []}]
            # FastAPI documents a 422 of its own for every operation with parameters; the
            # gateway answers a bad parameter 400 (gateway.problems), never that body.
            responses = operation.get("responses", {})
            if _is_fastapi_validation_error(responses.get("422", {})):
                del responses["422"]
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                json_content = content.get("application/json", {})
                if json_content.get("schema", {}).get("$ref") == problem_ref:
                    content[PROBLEM_JSON] = content.pop("application/json")
            _add_examples(operation, examples.get(operation["operationId"]))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _add_examples(operation: dict[str, Any], examples: OperationExamples | None) -> None:
    if examples is None:
        raise LookupError(f"no examples for the operation {operation['operationId']}")
    for parameter in operation.get("parameters", []):
        example = examples.parameters[parameter["name"]]
        parameter["examples"] = {"demo": example.as_openapi()}
    if examples.body is not None:
        for media in operation["requestBody"]["content"].values():
            media["examples"] = {"demo": examples.body.as_openapi()}
    for status, response in operation["responses"].items():
        named = examples.responses[int(status)]
        for media in response["content"].values():
            media["examples"] = {name: example.as_openapi() for name, example in named.items()}
