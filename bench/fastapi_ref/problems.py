"""RFC 9457 problem+json for every error, in the service's shape, as FastAPI exception handlers."""

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    422: "Unprocessable Content",
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail
        self.errors, self.headers = errors, dict(headers or {})


def problem_response(problem: Problem, instance: str) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:cme:problem:{problem.slug}" if problem.slug else "about:blank",
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
    }
    if problem.errors:
        body["errors"] = problem.errors
    headers = {"Cache-Control": "no-store", **problem.headers}
    return JSONResponse(body, problem.status, headers, media_type="application/problem+json")


async def on_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return problem_response(error, request.url.path)


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    problem = Problem(error.status_code, "", str(error.detail), headers=error.headers)
    return problem_response(problem, request.url.path)


async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    found = error.errors()
    if any(e["type"] == "json_invalid" for e in found):
        problem = Problem(400, "malformed-json", "the body is not valid JSON")
    elif any(e["loc"][0] == "path" for e in found):  # an id that is not a UUID names no product
        problem = Problem(404, "not-found", "no product has this id")
    else:
        errors = [
            {"field": ".".join(str(part) for part in e["loc"][1:]), "message": e["msg"]}
            for e in found
        ]
        problem = Problem(422, "validation-error", "one or more fields are not valid", errors)
    return problem_response(problem, request.url.path)


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
