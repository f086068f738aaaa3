"""The Confluent Schema Registry REST subset, as a FastAPI router.

Mount ``router`` into any FastAPI app and put a started ``SchemaStore`` in
``app.state.schema_store``; every route finds it there through the ``get_store``
dependency (override it with ``app.dependency_overrides[get_store]`` if needed). The
router converts registry errors itself (its own route class), so it needs no exception
handler on the app. ``create_registry_app(store)`` builds a stand-alone app (tests).

Paths, JSON shapes, status codes and ``error_code``s are Confluent's; requests may be
``application/vnd.schemaregistry.v1+json``, ``application/vnd.schemaregistry+json``,
``application/json`` or ``application/octet-stream``, answers are
``application/vnd.schemaregistry.v1+json``. Only the AVRO schema type is served; schema
references, contexts, modes and metadata/rule sets are not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from hub.errors import HubError
from hub.registry.compat import (
    SCHEMA_TYPES,
    BadRequestError,
    InvalidSchemaError,
    RegistryError,
    StoreError,
    UnsupportedMediaTypeError,
    parse_version,
)
from hub.registry.store import SchemaStore

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_MEDIA_TYPES = frozenset(
    {
        MEDIA_TYPE,
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
    }
)


class RegistryResponse(JSONResponse):
    media_type = MEDIA_TYPE


def error_response(status: int, error_code: int, message: str) -> RegistryResponse:
    return RegistryResponse({"error_code": error_code, "message": message}, status_code=status)


class RegistryRoute(APIRoute):
    """Answers RegistryError (and request validation errors) in Confluent's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RegistryError as exc:
                return error_response(exc.http_status, exc.error_code, exc.message)
            except RequestValidationError as exc:
                where = "; ".join(
                    f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
                    for err in exc.errors()
                )
                return error_response(422, 422, f"Invalid request: {where}")
            except HubError as exc:
                log.warning("schema registry: %s", exc.message)
                return error_response(StoreError.http_status, StoreError.error_code, exc.message)

        return handle


router = APIRouter(
    route_class=RegistryRoute, default_response_class=RegistryResponse, tags=["schema registry"]
)


def get_store(request: Request) -> SchemaStore:
    """The store the app holds in ``app.state.schema_store``."""
    store = getattr(request.app.state, "schema_store", None)
    if not isinstance(store, SchemaStore):
        raise StoreError("schema registry has no store (app.state.schema_store is not set)")
    return store


async def json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, in one of the accepted media types."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in ACCEPTED_MEDIA_TYPES:
        raise UnsupportedMediaTypeError(f"HTTP 415 Unsupported Media Type: {media}")
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        raise BadRequestError("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequestError("Request body must be a JSON object")
    return data


Store = Annotated[SchemaStore, Depends(get_store)]
JsonBody = Annotated[dict[str, Any], Depends(json_body)]
Deleted = Annotated[bool, Query()]
Verbose = Annotated[bool, Query()]


def _schema_of(body: dict[str, Any]) -> tuple[object, object]:
    if body.get("references"):
        raise InvalidSchemaError("Invalid schema: schema references are not supported")
    if "schema" not in body:
        raise InvalidSchemaError("Invalid schema: the request has no 'schema'")
    return body["schema"], body.get("schemaType")


def _level_of(body: dict[str, Any]) -> object:
    return body.get("compatibility", body.get("compatibilityLevel"))


# --- subjects ------------------------------------------------------------------------------


@router.get("/subjects")
def list_subjects(store: Store, deleted: Deleted = False) -> list[str]:
    return store.subjects(deleted=deleted)


@router.get("/subjects/{subject}/versions")
def list_versions(subject: str, store: Store, deleted: Deleted = False) -> list[int]:
    return store.versions(subject, deleted=deleted)


@router.get("/subjects/{subject}/versions/{version}")
def get_version(
    subject: str, version: str, store: Store, deleted: Deleted = False
) -> dict[str, Any]:
    return store.get_version(subject, parse_version(version), deleted=deleted).to_json()


@router.get("/subjects/{subject}/versions/{version}/schema")
def get_version_schema(
    subject: str, version: str, store: Store, deleted: Deleted = False
) -> Response:
    entry = store.get_version(subject, parse_version(version), deleted=deleted)
    return Response(content=entry.schema, media_type=MEDIA_TYPE)


@router.post("/subjects/{subject}/versions")
def register_schema(subject: str, body: JsonBody, store: Store) -> dict[str, Any]:
    schema, schema_type = _schema_of(body)
    return {"id": store.register(subject, schema, schema_type).schema_id}


@router.post("/subjects/{subject}")
def lookup_schema(
    subject: str, body: JsonBody, store: Store, deleted: Deleted = False
) -> dict[str, Any]:
    schema, schema_type = _schema_of(body)
    return store.lookup(subject, schema, schema_type, deleted=deleted).to_json()


@router.delete("/subjects/{subject}")
def delete_subject(
    subject: str, store: Store, permanent: Annotated[bool, Query()] = False
) -> list[int]:
    return store.delete_subject(subject, permanent=permanent)


# --- schemas by id ---------------------------------------------------------------------------


@router.get("/schemas/types")
def schema_types() -> list[str]:
    return list(SCHEMA_TYPES)


@router.get("/schemas/ids/{schema_id}")
def get_schema(schema_id: int, store: Store) -> dict[str, Any]:
    return {"schema": store.schema_by_id(schema_id)}


@router.get("/schemas/ids/{schema_id}/versions")
def get_schema_versions(
    schema_id: int, store: Store, deleted: Deleted = False
) -> list[dict[str, Any]]:
    return [
        {"subject": e.subject, "version": e.version}
        for e in store.versions_by_id(schema_id, deleted=deleted)
    ]


# --- config ------------------------------------------------------------------------------------


@router.get("/config")
def get_global_config(store: Store) -> dict[str, Any]:
    return {"compatibilityLevel": store.compatibility().value}


@router.put("/config")
def put_global_config(body: JsonBody, store: Store) -> dict[str, Any]:
    return {"compatibility": store.set_compatibility(_level_of(body)).value}


@router.get("/config/{subject}")
def get_subject_config(
    subject: str,
    store: Store,
    default_to_global: Annotated[bool, Query(alias="defaultToGlobal")] = False,
) -> dict[str, Any]:
    return {"compatibilityLevel": store.compatibility(subject, fallback=default_to_global).value}


@router.put("/config/{subject}")
def put_subject_config(subject: str, body: JsonBody, store: Store) -> dict[str, Any]:
    return {"compatibility": store.set_compatibility(_level_of(body), subject).value}


@router.delete("/config/{subject}")
def delete_subject_config(subject: str, store: Store) -> dict[str, Any]:
    return {"compatibilityLevel": store.delete_compatibility(subject).value}


# --- compatibility -------------------------------------------------------------------------------


def _compatibility_answer(problems: list[str], verbose: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        answer["messages"] = problems
    return answer


@router.post("/compatibility/subjects/{subject}/versions/{version}")
def check_against_version(
    subject: str, version: str, body: JsonBody, store: Store, verbose: Verbose = False
) -> dict[str, Any]:
    schema, schema_type = _schema_of(body)
    parsed_version = parse_version(version)
    problems = store.test_compatibility(subject, schema, parsed_version, schema_type)
    return _compatibility_answer(problems, verbose)


@router.post("/compatibility/subjects/{subject}/versions")
def check_against_subject(
    subject: str, body: JsonBody, store: Store, verbose: Verbose = False
) -> dict[str, Any]:
    schema, schema_type = _schema_of(body)
    problems = store.test_compatibility(subject, schema, "all", schema_type)
    return _compatibility_answer(problems, verbose)


def create_registry_app(store: SchemaStore) -> FastAPI:
    """A stand-alone registry app on ``store``; the caller starts and closes the store."""
    app = FastAPI(title="CRM Event Hub schema registry", default_response_class=RegistryResponse)
    app.state.schema_store = store
    app.include_router(router)
    return app
