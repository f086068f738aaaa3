"""The tap and its two streams (see the package doc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

# Printed by the ``garbage_after_records`` knob (unless ``garbage_line`` says what): personal
# data, as a stray debug print of a real tap holds. The hub must never repeat it.
GARBAGE_LINE = "DEBUG user Ada Lovelace <ada.garbage@example.com> loaded"


def knobs(config: Any) -> dict[str, Any]:
    """The tap's config, overridden by the data file's ``knobs`` (a source whose schema
    changes between two runs of the same connector)."""
    data = json.loads(Path(config["data_file"]).read_text(encoding="utf-8"))
    return {**dict(config), **dict(data.get("knobs") or {})}


def users_schema(config: dict[str, Any]) -> dict[str, Any]:
    properties = [
        th.Property("id", th.IntegerType, required=True),
        th.Property("name", th.StringType),
        th.Property("email", th.EmailType),
        # incompatible change: the same property, now a string
        (
            th.Property("age", th.StringType)
            if config.get("age_as_string")
            else th.Property("age", th.IntegerType)
        ),
        th.Property("updated_at", th.DateTimeType, required=True),
        th.Property("birth_date", th.DateType),
        th.Property("score", th.NumberType),
        th.Property("active", th.BooleanType),
        th.Property(
            "address",
            th.ObjectType(
                th.Property("city", th.StringType),
                th.Property("post-code", th.StringType),  # not an Avro name
            ),
        ),
        th.Property("tags", th.ArrayType(th.StringType)),
    ]
    if config.get("add_nickname"):  # compatible change: one more optional property
        properties.append(th.Property("nickname", th.StringType))
    return th.PropertiesList(*properties).to_dict()


ORGS_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("name", th.StringType),
    th.Property("plan", th.StringType),
    th.Property("seats", th.IntegerType),
).to_dict()


class _FixtureStream(Stream):
    """Reads one list of the data file; applies the misbehaviour knobs."""

    @property
    def fixture(self) -> TapHubFixture:
        tap = self._tap
        assert isinstance(tap, TapHubFixture)
        return tap

    def rows(self) -> list[dict[str, Any]]:
        data = json.loads(Path(self.config["data_file"]).read_text(encoding="utf-8"))
        return list(data.get(self.name, []))

    def emit(self, rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        for row in rows:
            self.fixture.before_record()
            yield row


class UsersStream(_FixtureStream):
    name = "users"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = "updated_at"
    is_sorted = True

    def __init__(self, tap: Tap) -> None:
        assert isinstance(tap, TapHubFixture)
        super().__init__(tap, schema=users_schema(tap.knobs))
        self.STATE_MSG_FREQUENCY = int(tap.knobs.get("state_every") or 10000)

    def get_records(self, context: Any) -> Iterable[dict[str, Any]]:
        start = self.get_starting_timestamp(context)
        rows = sorted(self.rows(), key=lambda r: r["updated_at"])
        if start is not None:  # ">=": the boundary record comes again (at least once)
            rows = [r for r in rows if _when(r["updated_at"]) >= start]
        as_string = self.fixture.knobs.get("age_as_string")
        for row in self.emit(rows):
            if as_string and row.get("age") is not None:
                yield {**row, "age": str(row["age"])}
            else:
                yield row


class OrgsStream(_FixtureStream):
    name = "orgs"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = None

    def __init__(self, tap: Tap) -> None:
        super().__init__(tap, schema=ORGS_SCHEMA)

    def get_records(self, context: Any) -> Iterable[dict[str, Any]]:
        yield from self.emit(self.rows())


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TapHubFixture(Tap):
    name = "tap-hubfixture"
    config_jsonschema = th.PropertiesList(
        th.Property("data_file", th.StringType, required=True),
        th.Property("state_every", th.IntegerType, description="STATE every N records"),
        th.Property("fail_after_records", th.IntegerType, description="exit 1 after N"),
        th.Property("hang_after_records", th.IntegerType, description="hang after N"),
        th.Property("hang_child_pid_file", th.StringType, description="hang in a child too"),
        th.Property("garbage_after_records", th.IntegerType, description="stray print"),
        th.Property("age_as_string", th.BooleanType, description="incompatible change"),
        th.Property("add_nickname", th.BooleanType, description="compatible change"),
        th.Property("api_token", th.StringType, secret=True, description="must match"),
        th.Property("pid_file", th.StringType, description="write the tap's pid there"),
        th.Property("env_file", th.StringType, description="write its env's names there"),
        th.Property("garbage_line", th.StringType, description="what the garbage says"),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.emitted = 0
        self._knobs: dict[str, Any] | None = None
        super().__init__(*args, **kwargs)

    @property
    def knobs(self) -> dict[str, Any]:
        if self._knobs is None:
            self._knobs = knobs(self.config)
        return self._knobs

    def discover_streams(self) -> list[Stream]:
        if self.knobs.get("pid_file"):
            Path(self.knobs["pid_file"]).write_text(str(os.getpid()), encoding="utf-8")
        if self.knobs.get("env_file"):
            Path(self.knobs["env_file"]).write_text(json.dumps(sorted(os.environ)), "utf-8")
        self.check_token()
        return [UsersStream(self), OrgsStream(self)]

    def check_token(self) -> None:
        """A refused credential: the data file names the token the source accepts."""
        data = json.loads(Path(self.config["data_file"]).read_text(encoding="utf-8"))
        wanted = data.get("token")
        if wanted is not None and self.config.get("api_token") != wanted:
            self.logger.error("the source refused the api_token")
            sys.exit(1)

    def before_record(self) -> None:
        """Runs before each record is handed to singer-sdk: the knobs fire here."""
        config = self.knobs
        if self.emitted == config.get("fail_after_records"):
            raise RuntimeError("knob fail_after_records: the source went away")
        if self.emitted == config.get("garbage_after_records"):
            sys.stdout.write(str(config.get("garbage_line") or GARBAGE_LINE) + "\n")
            sys.stdout.flush()
        if self.emitted == config.get("hang_after_records"):
            pid_file = config.get("hang_child_pid_file")
            if pid_file:
                child = subprocess.Popen(
                    [sys.executable, "-c", "import time; time.sleep(3600)"],
                    stdout=subprocess.DEVNULL,
                )
                Path(pid_file).write_text(str(child.pid), encoding="utf-8")
            time.sleep(3600)
        self.emitted += 1
