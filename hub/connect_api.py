"""Kafka Connect's REST API (Apache Kafka 3.6+ paths, JSON shapes and status codes) as a
FastAPI router, so Connect clients and scripts manage the hub's connectors unchanged.

Mount ``router`` into an app and put a started ``ConnectState`` in
``app.state.connect_state``. Any process holding the state can answer any request: the
state lives in Kafka (hub/connect_state.py) and the connect workers act on it.

Errors come back in Connect's shape, ``{"error_code": <HTTP status>, "message": ...}``.
Config values are kept as strings, as Connect keeps them; config-provider references
(``${env:VAR}``) are stored and returned as written and resolved only by the worker.

Differences from Apache Kafka, on purpose:
* alter/reset offsets of a connector that is not STOPPED answer 409 (Kafka answers 400);
* every connector has exactly one task (``tasks.max`` is accepted and checked, not used);
* ``commit`` in ``GET /`` is the hub's version string, not a git commit.
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

import hub
from hub.connect_plugins import config_string, error_messages, find_plugin, plugins, validate
from hub.connect_state import ConnectState, Status
from hub.errors import ConfigError, HubError, RetriableError

log = logging.getLogger(__name__)

CONNECTOR_TYPE = "source"
_BUSY = ("RUNNING", "PAUSED", "RESTARTING")


class ConnectApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": status, "message": message}, status_code=status)


class ConnectRoute(APIRoute):
    """Answers errors in Connect's shape; never with raw exception text."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ConnectApiError as exc:
                return error_response(exc.status, exc.message)
            except RequestValidationError as exc:
                where = "; ".join(
                    f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
                    for err in exc.errors()
                )
                return error_response(400, f"Invalid request: {where}")
            except ConfigError as exc:
                return error_response(400, exc.message)
            except RetriableError as exc:
                log.warning("connect api: %s", exc.message)
                return error_response(503, exc.message)
            except HubError as exc:
                log.warning("connect api: %s", exc.message)
                return error_response(500, exc.message)

        return handle


router = APIRouter(route_class=ConnectRoute, tags=["connect"])


def get_state(request: Request) -> ConnectState:
    state = getattr(request.app.state, "connect_state", None)
    if not isinstance(state, ConnectState):
        raise ConnectApiError(500, "connect API has no state (app.state.connect_state)")
    return state


def worker_id(request: Request) -> str:
    """This process's id as Connect reports workers: its REST host:port."""
    return f"{request.url.hostname}:{request.url.port}"


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise ConnectApiError(400, "Request body is not valid JSON") from None


State = Annotated[ConnectState, Depends(get_state)]
Body = Annotated[Any, Depends(json_body)]
WorkerId = Annotated[str, Depends(worker_id)]


# -- helpers ------------------------------------------------------------------------------


def _not_found(name: str) -> ConnectApiError:
    return ConnectApiError(404, f"Connector {name} not found")


def _config_of(state: ConnectState, name: str) -> dict[str, Any]:
    config = state.config(name)
    if config is None:
        raise _not_found(name)
    return config


def _as_string(key: str, value: Any) -> str:
    text = config_string(value)
    if text is not None:
        return text
    raise ConnectApiError(400, f"Connector configuration value of {key} must be a string")


def normalize_config(name: str, raw: Any) -> dict[str, str]:
    """A checked Connect config for ``name``: strings, a known plugin, no invalid value.
    Raises ConnectApiError(400) in Connect's words otherwise."""
    if not isinstance(raw, dict):
        raise ConnectApiError(400, "Connector configuration must be a JSON object")
    config = {str(k): _as_string(str(k), v) for k, v in raw.items() if v is not None}
    if config.setdefault("name", name) != name:
        raise ConnectApiError(
            400,
            f"Connector name configuration ({config['name']}) doesn't match connector "
            f"name in the URL ({name})",
        )
    if not config.get("connector.class"):
        raise ConnectApiError(400, "Connector config contains no connector type (connector.class)")
    plugin = find_plugin(config["connector.class"])  # ConfigError -> 400, lists known ones
    result = validate(plugin, config)
    if result["error_count"]:
        problems = error_messages(result)
        raise ConnectApiError(
            400,
            f"Connector configuration is invalid and contains the following "
            f"{len(problems)} error(s):\n" + "\n".join(problems) + "\nYou can also find the "
            f"above list of errors at the endpoint `/connector-plugins/{plugin.name}/config/"
            "validate`",
        )
    return config


def _status_json(state: ConnectState, name: str, default_worker: str) -> dict[str, Any]:
    conn = state.connector_status(name) or Status("UNASSIGNED", default_worker)
    task = state.task_status(name) or Status("UNASSIGNED", conn.worker_id)
    tasks = [] if conn.state == "STOPPED" else [{"id": 0, **task.to_json()}]
    return {"name": name, "connector": conn.to_json(), "tasks": tasks, "type": CONNECTOR_TYPE}


def _task_ids(state: ConnectState, name: str) -> list[dict[str, Any]]:
    status = state.connector_status(name)
    if status is not None and status.state == "STOPPED":
        return []
    return [{"connector": name, "task": 0}]


def _info_json(state: ConnectState, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "config": _config_of(state, name),
        "tasks": _task_ids(state, name),
        "type": CONNECTOR_TYPE,
    }


def _require_stopped(state: ConnectState, name: str) -> None:
    _config_of(state, name)
    status = state.connector_status(name)
    if state.target_state(name) != "STOPPED" or (status is not None and status.state in _BUSY):
        raise ConnectApiError(
            409,
            f"The offsets of connector {name} can only be changed while it is STOPPED; "
            f"stop it first with PUT /connectors/{name}/stop and wait for its status to "
            "show STOPPED",
        )


# -- cluster and plugins ------------------------------------------------------------------


@router.get("/", summary="Version of the worker and the Kafka cluster id")
def server_info(state: State) -> dict[str, Any]:
    return {
        "version": hub.__version__,
        "commit": hub.__version__,
        "kafka_cluster_id": state.cluster_id,
    }


@router.get("/connector-plugins")
def list_plugins(connectors_only: Annotated[bool, Query(alias="connectorsOnly")] = True) -> Any:
    return [
        {"class": p.class_name, "type": CONNECTOR_TYPE, "version": p.version}
        for p in plugins().values()
    ]


@router.put("/connector-plugins/{plugin}/config/validate")
def validate_config(plugin: str, body: Body) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ConnectApiError(400, "Connector configuration must be a JSON object")
    found = find_plugin(plugin)
    config = {str(k): _as_string(str(k), v) for k, v in body.items() if v is not None}
    config.setdefault("connector.class", plugin)
    if find_plugin(config["connector.class"]) is not found:
        raise ConnectApiError(
            400, "Included connector type doesn't match the connector type in the path"
        )
    return validate(found, config)


# -- connectors ---------------------------------------------------------------------------


@router.get("/connectors")
def list_connectors(
    state: State, wid: WorkerId, expand: Annotated[list[str] | None, Query()] = None
) -> Any:
    names = state.connectors()
    if not expand:
        return names
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        entry: dict[str, Any] = {}
        if "status" in expand:
            entry["status"] = _status_json(state, name, wid)
        if "info" in expand:
            entry["info"] = _info_json(state, name)
        out[name] = entry
    return out


_INITIAL_STATES = {"RUNNING": "STARTED", "PAUSED": "PAUSED", "STOPPED": "STOPPED"}


@router.post("/connectors", status_code=201)
def create_connector(state: State, body: Body, wid: WorkerId, response: Response) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        raise ConnectApiError(400, "Connector request must have a non-empty string 'name'")
    name = body["name"]
    initial = body.get("initial_state", "RUNNING")
    if initial not in _INITIAL_STATES:
        raise ConnectApiError(400, f"initial_state must be one of {', '.join(_INITIAL_STATES)}")
    config = normalize_config(name, body.get("config"))
    if state.config(name) is not None:
        raise ConnectApiError(409, f"Connector {name} already exists")
    # status first: a worker that picks the connector up writes its own after this one
    state.put_status(name, Status("UNASSIGNED", wid))
    state.put_config(name, config, initial_target=_INITIAL_STATES[initial])
    response.headers["Location"] = f"/connectors/{name}"
    return {"name": name, "config": config, "tasks": [], "type": CONNECTOR_TYPE}


@router.get("/connectors/{name}")
def get_connector(name: str, state: State) -> dict[str, Any]:
    return _info_json(state, name)


@router.delete("/connectors/{name}", status_code=204)
def delete_connector(name: str, state: State) -> Response:
    _config_of(state, name)
    state.delete_connector(name)
    return Response(status_code=204)


@router.get("/connectors/{name}/config")
def get_config(name: str, state: State) -> dict[str, Any]:
    return _config_of(state, name)


@router.put("/connectors/{name}/config")
def put_config(name: str, state: State, body: Body, wid: WorkerId, response: Response) -> Any:
    config = normalize_config(name, body)
    existed = state.config(name) is not None
    if existed:
        state.put_config(name, config)
    else:
        state.put_status(name, Status("UNASSIGNED", wid))
        state.put_config(name, config, initial_target="STARTED")
        response.headers["Location"] = f"/connectors/{name}"
    response.status_code = 200 if existed else 201
    return {
        "name": name,
        "config": config,
        "tasks": _task_ids(state, name) if existed else [],
        "type": CONNECTOR_TYPE,
    }


@router.get("/connectors/{name}/status")
def get_status(name: str, state: State, wid: WorkerId) -> dict[str, Any]:
    _config_of(state, name)
    return _status_json(state, name, wid)


@router.get("/connectors/{name}/tasks")
def get_tasks(name: str, state: State) -> list[dict[str, Any]]:
    config = _config_of(state, name)
    return [
        {"id": task, "config": {**config, "task.class": config.get("connector.class", "")}}
        for task in _task_ids(state, name)
    ]


@router.get("/connectors/{name}/tasks/{task}/status")
def get_task_status(name: str, task: int, state: State, wid: WorkerId) -> dict[str, Any]:
    _config_of(state, name)
    tasks = _status_json(state, name, wid)["tasks"]
    if task != 0 or not tasks:
        raise ConnectApiError(404, f"No status found for task {name}-{task}")
    return dict(tasks[0])


def _set_target(state: ConnectState, name: str, target: str) -> Response:
    _config_of(state, name)
    state.set_target(name, target)
    return Response(status_code=202)


@router.put("/connectors/{name}/pause", status_code=202)
def pause(name: str, state: State) -> Response:
    return _set_target(state, name, "PAUSED")


@router.put("/connectors/{name}/resume", status_code=202)
def resume(name: str, state: State) -> Response:
    return _set_target(state, name, "STARTED")


@router.put("/connectors/{name}/stop", status_code=202)
def stop(name: str, state: State) -> Response:
    return _set_target(state, name, "STOPPED")


@router.post("/connectors/{name}/restart")
def restart(
    name: str,
    state: State,
    wid: WorkerId,
    include_tasks: Annotated[bool, Query(alias="includeTasks")] = False,
    only_failed: Annotated[bool, Query(alias="onlyFailed")] = False,
) -> Response:
    _config_of(state, name)
    if not include_tasks and not only_failed:
        state.request_restart(name, include_tasks=False, only_failed=False)
        return Response(status_code=204)
    body = _status_json(state, name, wid)
    restart_conn = not only_failed or body["connector"]["state"] == "FAILED"
    if restart_conn:
        body["connector"]["state"] = "RESTARTING"
    restart_task = False
    for task in body["tasks"]:
        if include_tasks and (not only_failed or task["state"] == "FAILED"):
            task["state"] = "RESTARTING"
            restart_task = True
    if restart_conn or restart_task:
        state.request_restart(name, include_tasks=include_tasks, only_failed=only_failed)
    return JSONResponse(body, status_code=202)


@router.post("/connectors/{name}/tasks/{task}/restart", status_code=204)
def restart_task(name: str, task: int, state: State) -> Response:
    _config_of(state, name)
    if task != 0:
        raise ConnectApiError(404, f"Task {name}-{task} not found")
    state.request_restart(name, include_tasks=True, only_failed=False)
    return Response(status_code=204)


@router.get("/connectors/{name}/topics")
def get_topics(name: str, state: State) -> dict[str, Any]:
    _config_of(state, name)
    return {name: {"topics": state.topics_of(name)}}


# -- offsets (KIP-875) --------------------------------------------------------------------


@router.get("/connectors/{name}/offsets")
def get_offsets(name: str, state: State) -> dict[str, Any]:
    _config_of(state, name)
    return {"offsets": [{"partition": p, "offset": o} for p, o in state.offsets(name)]}


@router.patch("/connectors/{name}/offsets")
def alter_offsets(name: str, state: State, body: Body) -> dict[str, str]:
    _require_stopped(state, name)
    entries = body.get("offsets") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConnectApiError(400, "Offsets to alter must be a non-empty list under 'offsets'")
    changes: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for entry in entries:
        partition = entry.get("partition") if isinstance(entry, dict) else None
        offset = entry.get("offset") if isinstance(entry, dict) else None
        if not isinstance(partition, dict) or not (offset is None or isinstance(offset, dict)):
            raise ConnectApiError(
                400, 'Each offset must be {"partition": {...}, "offset": {...} or null}'
            )
        changes.append((partition, offset))
    state.write_offsets(name, changes)
    return {"message": "The offsets for this connector have been altered successfully"}


@router.delete("/connectors/{name}/offsets")
def reset_offsets(name: str, state: State) -> dict[str, str]:
    _require_stopped(state, name)
    state.reset_offsets(name)
    return {"message": "The offsets for this connector have been reset successfully"}


def create_connect_app(state: ConnectState) -> FastAPI:
    """A stand-alone app on ``state`` (tests); the caller starts and closes the state."""
    app = FastAPI(title="CRM Event Hub connect API")
    app.state.connect_state = state
    app.include_router(router)
    return app


__all__ = ["ConnectApiError", "create_connect_app", "normalize_config", "router"]
