"""Any Singer tap as a source connector, run under the hub's governance.

The tap runs as a subprocess (``tap.command``) with its own config (``tap.config``: a
JSON file or an inline JSON object, whose ``${env:…}`` references the worker resolved).
Its catalog (``--discover`` before each run, or a ``catalog`` file) gives the streams: one
topic each (``topic.template``), an Avro schema mapped from the stream's JSON Schema and
registered in the schema registry. A run reads the tap's stdout line by line:

- SCHEMA -> the stream's Avro schema (a change evolves the subject, or fails the connector
  with the registry's reason when incompatible); RECORD -> an event; STATE -> a checkpoint.
- One source partition, ``{"tap": <connector name>}``; its cursor is ``{"state": <the tap's
  last STATE value>}``, committed by the runner only after every record before it was
  acknowledged, and handed back to the next run with ``--state``.
- A tap that exits non-zero, writes nothing for ``idle.timeout.seconds`` or writes a line
  that is not a Singer message fails the connector with a ``FatalError`` naming the tap's
  stderr log (never quoting what it printed). The tap is always stopped and reaped.

The next run starts ``run.interval.seconds`` after a run ended (a tap is a batch job; the
worker polls its connectors every second).
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.singer.catalog import (
    CatalogStream,
    catalog_for_tap,
    parse_catalog,
    selected_streams,
)
from connectors.singer.messages import (
    STATE_KEY,
    BatchMessages,
    MessageReader,
    NotSinger,
    StreamOut,
)
from connectors.singer.process import TapLogs, TapProcess, exit_reason, tap_environment
from connectors.singer.schema import avro_mapping
from hub.errors import ConfigError, FatalError
from hub.sdk.streams import (
    OffsetReader,
    SourceConnectorBase,
    SourcePartition,
    SourceRecord,
    Stream,
    resume_partition,
)

log = logging.getLogger(__name__)

TEMPLATE_FIELDS = ("department", "stream", "connector")
_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _topic_part(text: str) -> str:
    return "".join(c if c in _TOPIC_CHARS else "_" for c in text)


def _json_object(value: Any) -> Any:
    """A JSON object given as text (Connect configs are strings) or as a mapping already."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("not valid JSON") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
    return value


class SingerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="singer", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    tap_command: tuple[str, ...] = Field(
        description='The tap to run: a command line ("tap-hubspot", "python -m tap_x") or '
        'a JSON list of arguments (["/opt/taps/bin/tap-x", "--flag"])'
    )
    tap_config: Path | dict[str, Any] | None = Field(
        default=None,
        repr=False,  # may hold resolved secrets
        description="The tap's config: a path to its JSON file, or an inline JSON object "
        "(secrets as ${env:VAR} / ${file:/path:key} references)",
    )
    tap_env: dict[str, str] = Field(
        default={},
        repr=False,
        description="Extra environment variables for the tap (JSON object); it inherits only "
        "PATH, HOME, locale, TMPDIR and proxy settings from the worker",
    )
    department: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Department the records belong to"
    )
    topic_template: str = Field(
        default="crm.raw.{department}.{stream}.v1",
        description="Topic of each stream ({department}, {stream}, {connector})",
    )
    event_type_template: str = Field(
        default="crm.{department}.{stream}.changed.v1",
        description="CloudEvents type of each stream's events",
    )
    catalog: Path | None = Field(
        default=None, description="A Singer catalog file to use instead of --discover"
    )
    select: tuple[str, ...] = Field(
        default=(), description="Streams to sync (comma-separated); default: all"
    )
    catalog_flag: Literal["auto", "--catalog", "--properties", "none"] = Field(
        default="auto",
        description="How the tap takes its catalog; auto asks the tap (--about)",
    )
    idle_timeout_seconds: float = Field(
        default=300.0, gt=0, description="A tap silent this long (stdout and stderr) is hung"
    )
    discover_timeout_seconds: float = Field(
        default=300.0, gt=0, description="How long --discover may stay silent"
    )
    run_interval_seconds: float = Field(
        default=300.0, ge=0, description="Seconds between the end of a tap run and the next"
    )
    log_dir: Path | None = Field(
        default=None, description="Where the taps' stderr logs go (default: the temp dir)"
    )

    @field_validator("tap_command", mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError("not a valid JSON list") from None
                if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise ValueError("a JSON list must hold strings only")
            else:
                try:
                    value = shlex.split(text)
                except ValueError:
                    raise ValueError("unbalanced quotes") from None
        if not value:
            raise ValueError("names no command")
        return value

    @field_validator("tap_config", mode="before")
    @classmethod
    def _tap_config(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("{"):
            return _json_object(value)
        return value

    @field_validator("tap_env", mode="before")
    @classmethod
    def _tap_env(cls, value: Any) -> Any:
        value = _json_object(value)
        if isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("select", mode="before")
    @classmethod
    def _select(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        return value

    @field_validator("topic_template", "event_type_template")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(**dict.fromkeys(TEMPLATE_FIELDS, "x"))
        except (KeyError, IndexError, ValueError):
            fields = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            raise ValueError(f"a template may use only {fields}") from None
        return value


class SingerConnector(SourceConnectorBase):
    """Plugin ``singer`` (entry point group ``crm_hub.connectors``)."""

    Config = SingerConfig
    version = "0.1.0"

    def __init__(self, config: SingerConfig) -> None:
        self.config = config
        self.name = config.name
        self.department = config.department
        self.who = f"connector {config.name}"
        self.logs = TapLogs(config.log_dir, config.name)
        self.runs = 0
        self._catalog: dict[str, Any] | None = None  # as discovered or read
        self._selected: list[CatalogStream] = []
        self._known: dict[str, StreamOut] = {}  # by every name of a catalog stream
        self._outs: dict[tuple[str, str, tuple[str, ...], str | None], StreamOut] = {}
        self._capabilities: tuple[str | None, bool] | None = None  # (catalog flag, --state)
        self._fresh = False  # discovered, and not used by a run yet
        self._next_run = 0.0
        self._tap: TapProcess | None = None  # the running tap, for interrupt()

    # -- discovery --------------------------------------------------------------------------

    def streams(self) -> Sequence[Stream]:
        self._discover()
        names = [s.tap_stream_id for s in self._selected]
        return tuple(self._known[n].stream for n in names)

    def check(self) -> None:
        """Run the tap's ``--discover`` (or read the catalog file) and map its streams."""
        if self.config.catalog is not None and shutil.which(self.config.tap_command[0]) is None:
            raise ConfigError(
                f"{self.who}: the tap command {self.config.tap_command[0]!r} was not found; "
                "check tap.command"
            )
        self._catalog = None
        self._discover()

    def _discover(self) -> None:
        if self._catalog is not None:
            return
        if self.config.catalog is not None:
            catalog = self._read_catalog_file(self.config.catalog)
        else:
            catalog = self._run_discover()
        try:
            streams = parse_catalog(catalog)
            selected = selected_streams(
                streams, self.config.select, from_file=self.config.catalog is not None
            )
        except ValueError as exc:
            raise ConfigError(f"{self.who}: {exc}") from None
        known: dict[str, StreamOut] = {}
        for entry in streams:
            out = self._resolve(
                entry.tap_stream_id, entry.schema, entry.key_properties, entry.replication_key
            )
            for name in entry.names:
                known[name] = out
        self._catalog, self._selected, self._known = dict(catalog), selected, known
        self._fresh = True

    def _read_catalog_file(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{self.who}: cannot read catalog {path} ({exc.strerror})") from None
        except ValueError:
            raise ConfigError(f"{self.who}: catalog {path} is not valid JSON") from None

    def _run_discover(self) -> Any:
        with tempfile.TemporaryDirectory(prefix="crm-hub-singer-") as tmp:
            argv = [*self.config.tap_command, "--config", str(self._config_file(Path(tmp)))]
            output, log_path = self._run_to_end([*argv, "--discover"], "discover")
        try:
            return json.loads(output)
        except ValueError:
            raise FatalError(
                f"{self.who}: the tap's --discover printed no JSON catalog on stdout; its log "
                f"is {log_path}. Fix the tap, or give a catalog file (catalog)"
            ) from None

    def _run_to_end(self, argv: list[str], mode: str) -> tuple[bytes, Path]:
        log_path = self.logs.new(mode)
        with TapProcess(
            argv,
            env=tap_environment(self.config.tap_env),
            log_path=log_path,
            idle_timeout=self.config.discover_timeout_seconds,
            who=self.who,
            timeout_setting="discover.timeout.seconds",
        ) as tap:
            output = b"\n".join(tap.lines())
            code = tap.returncode
        if code != 0 and mode == "discover":
            raise FatalError(
                f"{self.who}: the tap's --discover {exit_reason(code or 0)}; its log is "
                f"{log_path}. Check tap.config and that the source is reachable"
            )
        return (output if code == 0 else b""), log_path

    def _tap_capabilities(self) -> tuple[str | None, bool]:
        """(the flag the tap takes its catalog with, whether it takes --state)."""
        if self._capabilities is not None:
            return self._capabilities
        flag = self.config.catalog_flag
        if flag != "auto":
            self._capabilities = (None if flag == "none" else flag, True)
            return self._capabilities
        output, _ = self._run_to_end(
            [*self.config.tap_command, "--about", "--format", "json"], "about"
        )
        try:
            about = json.loads(output) if output else None
        except ValueError:
            about = None
        caps = about.get("capabilities") if isinstance(about, dict) else None
        if not isinstance(caps, list):  # not a singer-sdk tap: the Singer spec's flags
            self._capabilities = ("--catalog", True)
        elif "catalog" in caps:
            self._capabilities = ("--catalog", "state" in caps)
        elif "properties" in caps:
            self._capabilities = ("--properties", "state" in caps)
        else:
            self._capabilities = (None, "state" in caps)
        return self._capabilities

    def _resolve(
        self, name: str, schema: Any, keys: tuple[str, ...], replication_key: str | None
    ) -> StreamOut:
        """The stream as published for this JSON Schema: the same ``Stream`` object for the
        same Avro schema, a new one (same name, new schema) when it changed."""
        try:
            mapping = avro_mapping(name, schema)
        except ValueError as exc:
            raise FatalError(
                f"{self.who}: the schema of stream {name} cannot be mapped to Avro ({exc})"
            ) from None
        cache_key = (name, mapping.text, keys, replication_key)
        out = self._outs.get(cache_key)
        if out is not None:
            return out
        fields = mapping.fields
        template = {"department": self.department, "stream": name, "connector": self.name}
        topic_values = {k: _topic_part(v) for k, v in template.items()}
        stream = Stream(
            name=name,
            topic=self.config.topic_template.format(**topic_values),
            event_type=self.config.event_type_template.format(**topic_values),
            schema=mapping.schema,
            primary_key=tuple(fields[k] for k in keys if k in fields),
            replication_key=fields.get(replication_key) if replication_key else None,
        )
        out = self._outs[cache_key] = StreamOut(stream, mapping, keys, replication_key)
        return out

    # -- reading ------------------------------------------------------------------------------

    def partitions(self, offsets: OffsetReader) -> list[SourcePartition]:
        if time.monotonic() < self._next_run:
            return []
        return [resume_partition(offsets, self.name, {"tap": self.name})]

    def fetch(self, part: SourcePartition) -> Iterator[SourceRecord]:
        cursor = part.cursor or {}
        try:
            yield from self._sync(cursor.get(STATE_KEY))
        finally:
            self._tap = None
            self._next_run = time.monotonic() + self.config.run_interval_seconds

    def interrupt(self) -> None:
        """The worker stops this connector (pause, stop, rebalance): end a running tap now
        instead of at its next STATE or idle timeout. What was acknowledged is kept."""
        tap = self._tap
        if tap is not None:
            tap.interrupt()

    def _config_file(self, tmp: Path) -> Path:
        if isinstance(self.config.tap_config, Path):
            return self.config.tap_config
        path = tmp / "config.json"
        _write_private(path, self.config.tap_config or {})
        return path

    def _refresh(self) -> None:
        """Discover again before a run (unless a catalog file is given): with --catalog, a
        tap emits the catalog's schemas, so a source whose schema changed is seen only by
        a new discovery. The discovery ``streams()`` just made is used as it is."""
        if self.config.catalog is None and not self._fresh:
            self._catalog = None
        self._discover()
        self._fresh = False

    def _sync(self, state: Any) -> Iterator[SourceRecord]:
        self._refresh()
        catalog_flag, takes_state = self._tap_capabilities()
        with tempfile.TemporaryDirectory(prefix="crm-hub-singer-") as tmp_dir:
            tmp = Path(tmp_dir)
            argv = [*self.config.tap_command, "--config", str(self._config_file(tmp))]
            if catalog_flag is not None and self._catalog is not None:
                catalog = catalog_for_tap(
                    self._catalog,
                    {s.tap_stream_id for s in self._selected},
                    mark_properties=self.config.catalog is None,
                )
                _write_private(tmp / "catalog.json", catalog)
                argv += [catalog_flag, str(tmp / "catalog.json")]
            if state is not None and takes_state:
                _write_private(tmp / "state.json", state)
                argv += ["--state", str(tmp / "state.json")]
            log_path = self.logs.new("sync")
            self.runs += 1
            reader = MessageReader(self._resolve, self._known)
            with TapProcess(
                argv,
                env=tap_environment(self.config.tap_env),
                log_path=log_path,
                idle_timeout=self.config.idle_timeout_seconds,
                who=self.who,
            ) as tap:
                self._tap = tap
                for line in tap.lines():
                    try:
                        rec = reader.read(line)
                    except NotSinger as exc:
                        raise FatalError(
                            f"{self.who}: line {tap.lines_read} of the tap's stdout is not a "
                            f"Singer message ({exc.detail}); the tap was stopped. A tap must "
                            f"write only Singer messages to stdout and its logs to stderr; "
                            f"its log is {log_path}"
                        ) from None
                    except BatchMessages:
                        raise FatalError(
                            f"{self.who}: the tap sent BATCH messages, which the hub does not "
                            "read; turn batch_config off in tap.config"
                        ) from None
                    if rec is not None:
                        yield rec
                code = tap.returncode
            if code != 0:
                raise FatalError(
                    f"{self.who}: the tap {exit_reason(code or 0)} after {reader.records} "
                    "records; what it read up to its last STATE is kept, and its log is "
                    f"{log_path}. Fix the cause and restart the connector"
                )
            log.info(
                "%s: tap run %d read %d records, %d states",
                self.who,
                self.runs,
                reader.records,
                reader.states,
            )


def _write_private(path: Path, data: Any) -> None:
    """A JSON file only the worker's user can read (configs hold secrets, states may)."""
    path.touch(mode=0o600)
    path.write_text(json.dumps(data), encoding="utf-8")


__all__ = ["SingerConfig", "SingerConnector"]
