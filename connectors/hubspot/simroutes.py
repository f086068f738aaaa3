"""The simulator's API routes (shapes as HubSpot documents them); see ``simulator``."""

from __future__ import annotations

import base64
import json
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from connectors.hubspot.simdata import MODIFIED_PROPERTY, iso
from connectors.hubspot.simquery import BadRequest, parse_search, render

if TYPE_CHECKING:
    from connectors.hubspot.simulator import Simulator

OBJECT_TYPES = ("contacts", "companies")
INVERSE = {("contacts", "companies"), ("companies", "contacts")}


def _object_type(name: str) -> str:
    if name not in OBJECT_TYPES:
        raise BadRequest(f"unknown object type {name}")
    return name


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _encode_offset(index: int) -> str:
    return base64.urlsafe_b64encode(f"evt:{index}".encode()).decode().rstrip("=")


def _decode_offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "evt":
            raise ValueError(token)
        return int(number)
    except ValueError:
        raise BadRequest("offset is not a valid paging token") from None


def add_routes(app: FastAPI, sim: Simulator) -> None:
    from connectors.hubspot.simulator import (
        ASSOCIATION_BATCH_MAX,
        CAMPAIGNS_MAX_LIMIT,
        EVENTS_MAX_LIMIT,
        LIST_MAX_LIMIT,
        _json,
        _limit,
        _properties,
        find_position,
        paging,
    )

    @app.get("/crm/v3/objects/{object_type}")
    async def list_objects(object_type: str, request: Request) -> Response:
        def build() -> Response:
            kind = _object_type(object_type)
            limit = _limit(request, 10, LIST_MAX_LIMIT)
            archived = request.query_params.get("archived", "false").lower() == "true"
            ids = sim.ids(kind, archived)
            start = find_position(ids, request.query_params.get("after"))
            page = ids[start : start + limit]
            objects = sim.account.objects(kind)
            props = _properties(request)
            body: dict[str, Any] = {"results": [render(objects[i], kind, props) for i in page]}
            if start + limit < len(ids):
                body.update(paging(str(ids[start + limit]), str(request.url.path)))
            return _json(body)

        return await sim.answer(request, "list", build)

    @app.get("/crm/v3/objects/{object_type}/{object_id}")
    async def read_object(object_type: str, object_id: str, request: Request) -> Response:
        def build() -> Response:
            kind = _object_type(object_type)
            obj = sim.account.objects(kind).get(int(object_id)) if object_id.isdigit() else None
            if obj is None or obj.archived_at is not None:
                return _json(
                    {
                        "status": "error",
                        "message": "Object not found",
                        "category": "OBJECT_NOT_FOUND",
                    },
                    404,
                )
            return _json(render(obj, kind, _properties(request)))

        return await sim.answer(request, "read", build)

    @app.post("/crm/v3/objects/{object_type}/search")
    async def search(object_type: str, request: Request) -> Response:
        raw = await request.body()

        def build() -> Response:
            kind = _object_type(object_type)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise BadRequest("the body is not JSON") from None
            query = parse_search(body, kind)
            total, page = sim.search(kind, query)
            out: dict[str, Any] = {
                "total": total,
                "results": [render(o, kind, query.properties) for o in page],
            }
            nxt = query.offset + len(page)
            if nxt < total:
                out["paging"] = {"next": {"after": str(nxt)}}
            return _json(out)

        return await sim.answer(request, "search", build)

    @app.post("/crm/v4/associations/{from_type}/{to_type}/batch/read")
    async def batch_associations(from_type: str, to_type: str, request: Request) -> Response:
        raw = await request.body()

        def build() -> Response:
            if (from_type, to_type) not in INVERSE:
                raise BadRequest(f"unknown association {from_type} -> {to_type}")
            body = json.loads(raw or b"{}")
            inputs = body.get("inputs") if isinstance(body, dict) else None
            if not isinstance(inputs, list) or len(inputs) > ASSOCIATION_BATCH_MAX:
                raise BadRequest(f"inputs must be a list of at most {ASSOCIATION_BATCH_MAX} ids")
            started = _now_iso()
            results, errors = [], []
            for item in inputs:
                oid = str(item.get("id", "")) if isinstance(item, dict) else ""
                to = _associated(sim, from_type, int(oid)) if oid.isdigit() else []
                if to:
                    results.append({"from": {"id": oid}, "to": to})
                else:
                    errors.append(
                        {
                            "status": "error",
                            "category": "OBJECT_NOT_FOUND",
                            "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                            "message": f"No {to_type} is associated with {from_type} {oid}.",
                            "context": {"fromObjectId": [oid]},
                        }
                    )
            out: dict[str, Any] = {
                "status": "COMPLETE",
                "results": results,
                "startedAt": started,
                "completedAt": _now_iso(),
            }
            if errors:
                out.update(numErrors=len(errors), errors=errors)
            return _json(out, 207 if errors else 200)

        return await sim.answer(request, "associations", build)

    @app.get("/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}")
    async def associations(
        object_type: str, object_id: str, to_type: str, request: Request
    ) -> Response:
        def build() -> Response:
            if (object_type, to_type) not in INVERSE or not object_id.isdigit():
                raise BadRequest("unknown association or object id")
            limit = _limit(request, 500, 500)
            to = _associated(sim, object_type, int(object_id))
            after = request.query_params.get("after")
            start = int(after) if after and after.isdigit() else 0
            body: dict[str, Any] = {"results": to[start : start + limit]}
            if start + limit < len(to):
                body["paging"] = {"next": {"after": str(start + limit)}}
            return _json(body)

        return await sim.answer(request, "associations", build)

    @app.get("/marketing/v3/campaigns")
    async def campaigns(request: Request) -> Response:
        def build() -> Response:
            limit = _limit(request, 50, CAMPAIGNS_MAX_LIMIT)
            sort = request.query_params.get("sort", "createdAt")
            field = sort.lstrip("-")
            if field not in ("hs_name", "createdAt", "updatedAt"):
                raise BadRequest("sort must be hs_name, createdAt or updatedAt")
            items = list(sim.account.campaigns.values())

            def key(c: Any) -> Any:
                if field == "hs_name":
                    return (c.properties.get("hs_name") or "", c.id)
                return (c.created if field == "createdAt" else c.updated, c.id)

            items.sort(key=key, reverse=sort.startswith("-"))
            after = request.query_params.get("after") or "0"
            if not after.isdigit():
                raise BadRequest("after is not a valid paging token")
            start = int(after)
            wanted = _properties(request)
            page = items[start : start + limit]
            results = []
            for c in page:
                props = (
                    c.properties
                    if wanted is None
                    else {k: c.properties.get(k) for k in wanted if k in c.properties}
                )
                results.append(
                    {
                        "id": c.id,
                        "properties": props,
                        "createdAt": iso(c.created),
                        "updatedAt": iso(c.updated),
                        "businessUnits": [{"id": 0}],
                    }
                )
            body: dict[str, Any] = {"total": len(items), "results": results}
            if start + limit < len(items):
                body.update(paging(str(start + limit), str(request.url.path)))
            return _json(body)

        return await sim.answer(request, "campaigns", build)

    @app.get("/email/public/v1/events")
    async def email_events(request: Request) -> Response:
        def build() -> Response:
            q = request.query_params
            limit = _limit(request, 100, EVENTS_MAX_LIMIT)
            events = sim.account.events
            created = _created_index(sim)
            try:
                start_ms = int(q.get("startTimestamp", "0"))
                end_ms = int(q.get("endTimestamp", str(2**62)))
            except ValueError:
                raise BadRequest("startTimestamp and endTimestamp are epoch milliseconds") from None
            lo, hi = bisect_left(created, start_ms), bisect_right(created, end_ms)
            kind = q.get("eventType")
            offset = q.get("offset")
            pos = lo + (_decode_offset(offset) if offset else 0)
            out: list[dict[str, Any]] = []
            while pos < hi and len(out) < limit:
                event = events[pos]
                pos += 1
                if kind is None or event.get("type") == kind.upper():
                    out.append(event)
            more = pos < hi
            return _json({"events": out, "hasMore": more, "offset": _encode_offset(pos - lo)})

        return await sim.answer(request, "email_events", build)


def _created_index(sim: Simulator) -> list[int]:
    events = sim.account.events
    cached = sim.created_index
    if cached is None or len(cached) != len(events):
        cached = sim.created_index = [e["created"] for e in events]
    return cached


def _associated(sim: Simulator, from_type: str, oid: int) -> list[dict[str, Any]]:
    links = sim.account.associations
    if from_type == "contacts":
        found = links.get(oid, {})
        return [
            {"toObjectId": cid, "associationTypes": [dict(t) for t in types]}
            for cid, types in sorted(found.items())
        ]
    out = []
    for contact, companies in sorted(links.items()):
        if oid in companies:
            types = [{**t, "typeId": 280 if t["typeId"] == 279 else 2} for t in companies[oid]]
            out.append({"toObjectId": contact, "associationTypes": types})
    return out


__all__ = ["MODIFIED_PROPERTY", "add_routes"]
