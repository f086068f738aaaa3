"""What the simulator does with a CRM request: render objects as the API sends them, and
evaluate a search body (filter groups, one sort, paging capped at 10,000 results).

Search semantics reproduced from HubSpot's documentation: filters in a group are ANDed,
groups are ORed (at most 5 groups, 6 filters per group, 18 in all); one sort; ``limit`` at
most 200; ``after`` is an offset, and no page may reach past the 10,000th result (HTTP
400). Records that share the sorted value come in an order that is not the id order (the
real index gives no tie order either), so a client has to handle ties itself.
"""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.hubspot.simdata import MODIFIED_PROPERTY, CrmObject, iso

SEARCH_MAX_RESULTS = 10_000
SEARCH_MAX_LIMIT = 200
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
DATE_PROPERTIES = frozenset({"createdate", "lastmodifieddate", "hs_lastmodifieddate"})
NUMBER_PROPERTIES = frozenset({"hs_object_id"})

DEFAULT_PROPERTIES = {
    "contacts": (
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
}


class BadRequest(Exception):
    """The request is invalid: HTTP 400 with a VALIDATION_ERROR body."""


def all_properties(obj: CrmObject, object_type: str) -> dict[str, str | None]:
    return {
        **obj.properties,
        "createdate": iso(obj.created),
        MODIFIED_PROPERTY[object_type]: iso(obj.updated),
        "hs_object_id": str(obj.id),
    }


def render(obj: CrmObject, object_type: str, wanted: Iterable[str] | None) -> dict[str, Any]:
    """A SimplePublicObject: the requested properties (unknown names left out, unset ones
    null) plus the identifying ones, as strings."""
    props = all_properties(obj, object_type)
    names = list(wanted) if wanted else list(DEFAULT_PROPERTIES[object_type])
    for always in ("createdate", MODIFIED_PROPERTY[object_type], "hs_object_id"):
        if always not in names:
            names.append(always)
    out: dict[str, Any] = {
        "id": str(obj.id),
        "properties": {n: props[n] for n in names if n in props},
        "createdAt": iso(obj.created),
        "updatedAt": iso(obj.updated),
        "archived": obj.archived_at is not None,
    }
    if obj.archived_at is not None:
        out["archivedAt"] = iso(obj.archived_at)
    return out


def _number(value: Any, prop: str) -> float:
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    if prop in DATE_PROPERTIES:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            pass
    raise BadRequest(f"the value of a filter on {prop} is not a number or a date")


def _comparable(obj: CrmObject, object_type: str, prop: str) -> Any:
    if prop == "hs_object_id":
        return obj.id
    if prop == "createdate":
        return obj.created
    if prop == MODIFIED_PROPERTY[object_type]:
        return obj.updated
    return obj.properties.get(prop)


_Test = Callable[[Any], bool]
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq,
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
}


def _filter_test(f: Mapping[str, Any], object_type: str) -> tuple[str, _Test]:
    prop = f.get("propertyName")
    op = f.get("operator")
    if not isinstance(prop, str) or not isinstance(op, str):
        raise BadRequest("a filter needs propertyName and operator")
    numeric = (
        prop in DATE_PROPERTIES
        or prop in NUMBER_PROPERTIES
        or (prop == MODIFIED_PROPERTY.get(object_type))
    )

    def value(key: str = "value") -> Any:
        if key not in f:
            raise BadRequest(f"a {op} filter needs {key}")
        return _number(f[key], prop) if numeric else str(f[key])

    if op == "NEQ":
        other = value()
        return prop, lambda v: v != other
    if op in _COMPARE:
        compare, bound = _COMPARE[op], value()
        return prop, lambda v: v is not None and compare(v, bound)
    if op == "BETWEEN":
        lo, hi = value(), value("highValue")
        return prop, lambda v: v is not None and lo <= v <= hi
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        present = op == "HAS_PROPERTY"
        return prop, lambda v: (v is not None) == present
    if op in ("IN", "NOT_IN"):
        members, inside = _values(f, prop, numeric), op == "IN"
        return prop, lambda v: (v in members) == inside
    raise BadRequest(f"unsupported filter operator {op}")


def _values(f: Mapping[str, Any], prop: str, numeric: bool) -> frozenset[Any]:
    values = f.get("values")
    if not isinstance(values, list):
        raise BadRequest("an IN filter needs values (a list)")
    return frozenset(_number(v, prop) if numeric else str(v) for v in values)


@dataclass(frozen=True)
class SearchRequest:
    groups: list[list[tuple[str, _Test]]]
    sort: tuple[str, bool] | None  # (property, descending)
    properties: list[str] | None
    limit: int
    offset: int
    # the range of the modified time the only group asks for (for the index):
    # (low, low included, high, high included); exact: the group filters nothing else
    bounds: tuple[float | None, bool, float | None, bool] | None = None
    exact: bool = False


def parse_search(body: Any, object_type: str) -> SearchRequest:
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object")
    raw_groups = body.get("filterGroups") or []
    if not isinstance(raw_groups, list) or len(raw_groups) > MAX_GROUPS:
        raise BadRequest(f"at most {MAX_GROUPS} filterGroups are allowed")
    groups = []
    total = 0
    bounds: tuple[float | None, bool, float | None, bool] | None = None
    exact = False
    for group in raw_groups:
        filters = group.get("filters") if isinstance(group, Mapping) else None
        if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
            raise BadRequest(f"a filterGroup holds 1 to {MAX_FILTERS_PER_GROUP} filters")
        total += len(filters)
        groups.append([_filter_test(f, object_type) for f in filters])
        if len(raw_groups) == 1:
            prop = MODIFIED_PROPERTY[object_type]
            bounds = _bounds(filters, prop)
            exact = all(isinstance(f, Mapping) and f.get("propertyName") == prop for f in filters)
    if total > MAX_FILTERS:
        raise BadRequest(f"at most {MAX_FILTERS} filters are allowed in all")
    sorts = body.get("sorts") or []
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise BadRequest("one sort at most")
    sort = None
    if sorts:
        first = sorts[0]
        if isinstance(first, str):
            sort = (first.lstrip("-"), first.startswith("-"))
        elif isinstance(first, Mapping) and isinstance(first.get("propertyName"), str):
            sort = (first["propertyName"], str(first.get("direction", "ASCENDING")) == "DESCENDING")
        else:
            raise BadRequest("a sort needs propertyName")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or not 0 < limit <= SEARCH_MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {SEARCH_MAX_LIMIT}")
    after = body.get("after") or "0"
    try:
        offset = int(str(after))
    except ValueError:
        raise BadRequest("after must be a number") from None
    if offset < 0 or offset >= SEARCH_MAX_RESULTS:
        raise BadRequest(
            f"paging past the first {SEARCH_MAX_RESULTS} results is not allowed; narrow the search"
        )
    properties = body.get("properties")
    if properties is not None and not isinstance(properties, list):
        raise BadRequest("properties must be a list")
    return SearchRequest(groups, sort, properties, limit, offset, bounds, exact)


def _bounds(filters: list[Any], prop: str) -> tuple[float | None, bool, float | None, bool]:
    """The range a group's filters give ``prop`` (the tightest of each side)."""
    lo: float | None = None
    hi: float | None = None
    lo_in = hi_in = True
    for f in filters:
        if not isinstance(f, Mapping) or f.get("propertyName") != prop:
            continue
        op = f.get("operator")
        if op in ("GT", "GTE", "EQ", "BETWEEN"):
            value = _number(f.get("value"), prop)
            if lo is None or value > lo or (value == lo and op == "GT"):
                lo, lo_in = value, op != "GT"
        if op in ("LT", "LTE", "EQ", "BETWEEN"):
            value = _number(f.get("highValue" if op == "BETWEEN" else "value"), prop)
            if hi is None or value < hi or (value == hi and op == "LT"):
                hi, hi_in = value, op != "LT"
    return lo, lo_in, hi, hi_in


@functools.cache
def tiebreak(obj_id: int) -> bytes:
    """A stable order among equal sort values that is not the id order."""
    return hashlib.blake2b(obj_id.to_bytes(8, "big"), digest_size=4).digest()


def run_search(
    request: SearchRequest,
    object_type: str,
    candidates: Iterable[CrmObject],
    *,
    presorted: bool = False,
) -> tuple[int, list[CrmObject]]:
    """(total matches, the requested page). ``presorted``: the candidates come in the
    requested order already (the modified-time index)."""
    if request.groups:
        matched = [
            obj
            for obj in candidates
            if any(
                all(test(_comparable(obj, object_type, prop)) for prop, test in group)
                for group in request.groups
            )
        ]
    else:
        matched = list(candidates)
    if presorted:
        pass
    elif request.sort is not None:
        prop, descending = request.sort

        def key(obj: CrmObject) -> tuple[Any, bytes]:
            v = _comparable(obj, object_type, prop)
            return ((v is None, v if v is not None else 0), tiebreak(obj.id))

        matched.sort(key=key, reverse=descending)
    else:
        matched.sort(key=lambda o: o.id)
    end = min(request.offset + request.limit, len(matched))
    return len(matched), matched[request.offset : end]
