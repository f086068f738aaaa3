"""`crmhub connectors ...`: manage connectors through the hub's Kafka Connect REST API.

The API URL is ``--url``, else ``api_url`` in ``$HUB_HOME/runtime.json`` (written by
``crmhub up``), else the configured ``HUB_API_HOST``/``HUB_API_PORT``. A definition file
(YAML or JSON) holds what ``POST /connectors`` takes: ``{name, config}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import yaml
from rich.console import Console
from rich.table import Table

from hub.connect_plugins import config_string
from hub.errors import ConfigError, RetriableError
from hub.sdk.streams import SourceConnector
from hub.settings import load_settings, read_runtime

app = typer.Typer(
    help="Register, watch and manage connectors (the Kafka Connect REST API of the hub).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

Url = Annotated[
    str | None, typer.Option("--url", help="Hub API URL (default: from .hub/runtime.json)")
]
Name = Annotated[str, typer.Argument(help="Connector name")]


def api_url(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    settings = load_settings()
    runtime = read_runtime(settings.home)
    if runtime and runtime.get("api_url"):
        return str(runtime["api_url"]).rstrip("/")
    return settings.api_url


def _fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(1)


def call(url: str | None, method: str, path: str, body: Any = None) -> httpx.Response:
    """One request; a connection problem is a RetriableError, an error answer exits 1."""
    base = api_url(url)
    try:
        response = httpx.request(method, f"{base}{path}", json=body, timeout=30)
    except httpx.HTTPError as exc:
        raise RetriableError(
            f"cannot reach the hub API at {base} ({type(exc).__name__}); is `crmhub up` running?"
        ) from None
    if response.status_code >= 400:
        try:
            message = str(response.json().get("message"))
        except ValueError:
            message = response.text[:200]
        _fail(f"{response.status_code}: {message}")
    return response


def load_definition(path: Path) -> tuple[str, dict[str, str]]:
    """``{name, config}`` from a YAML or JSON file, config values as strings."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"connector definition {path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError:
        raise ConfigError(f"connector definition {path}: not valid YAML or JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ConfigError(f"connector definition {path}: needs a 'name' and a 'config' mapping")
    config = data.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"connector definition {path}: 'config' must be a mapping")
    out: dict[str, str] = {}
    for key, value in config.items():
        text = config_string(value)
        if text is None:
            raise ConfigError(f"connector definition {path}: config.{key} must be a scalar")
        out[str(key)] = text
    out.setdefault("name", data["name"])
    return data["name"], out


@app.command("list")
def list_connectors(url: Url = None) -> None:
    """Connectors with their state and worker."""
    statuses = call(url, "GET", "/connectors?expand=status").json()
    table = Table("connector", "state", "tasks", "worker")
    for name, entry in sorted(statuses.items()):
        status = entry["status"]
        tasks = ", ".join(f"{t['id']}:{t['state']}" for t in status["tasks"]) or "-"
        conn = status["connector"]
        table.add_row(name, conn["state"], tasks, conn.get("worker_id", ""))
    console.print(table)


@app.command()
def create(
    file: Annotated[Path, typer.Option("-f", "--file", help="Definition: {name, config}")],
    url: Url = None,
) -> None:
    """Create a connector from a YAML/JSON definition (fails if it exists)."""
    name, config = load_definition(file)
    call(url, "POST", "/connectors", {"name": name, "config": config})
    console.print(f"[green]created[/] {name}")


@app.command()
def apply(
    directory: Annotated[Path, typer.Argument(help="Directory of *.yaml / *.yml / *.json")],
    url: Url = None,
) -> None:
    """Create or update every connector defined in DIR; unchanged ones are left alone."""
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in {".yaml", ".yml", ".json"})
    if not files:
        raise ConfigError(f"no connector definitions (*.yaml, *.yml, *.json) in {directory}")
    for path in files:
        name, config = load_definition(path)
        base = api_url(url)
        try:
            current = httpx.get(f"{base}/connectors/{name}/config", timeout=30)
        except httpx.HTTPError as exc:
            raise RetriableError(
                f"cannot reach the hub API at {base} ({type(exc).__name__})"
            ) from None
        if current.status_code == 200 and current.json() == config:
            console.print(f"{name}: unchanged")
            continue
        response = call(url, "PUT", f"/connectors/{name}/config", config)
        console.print(f"{name}: {'created' if response.status_code == 201 else 'updated'}")


@app.command()
def status(name: Name, url: Url = None) -> None:
    """A connector's state, worker and, when FAILED, its trace."""
    body = call(url, "GET", f"/connectors/{name}/status").json()
    conn = body["connector"]
    colour = {"RUNNING": "green", "FAILED": "red"}.get(conn["state"], "yellow")
    console.print(f"{name}: [{colour}]{conn['state']}[/] on {conn.get('worker_id', '?')}")
    if conn.get("trace"):
        console.print(f"  trace: {conn['trace']}", markup=False)
    for task in body["tasks"]:
        console.print(f"  task {task['id']}: {task['state']}")


def _target(name: str, verb: str, url: str | None) -> None:
    call(url, "PUT", f"/connectors/{name}/{verb}")
    console.print(f"{name}: {verb} requested")


@app.command()
def pause(name: Name, url: Url = None) -> None:
    """Pause a connector (it keeps its place)."""
    _target(name, "pause", url)


@app.command()
def resume(name: Name, url: Url = None) -> None:
    """Resume a paused or stopped connector."""
    _target(name, "resume", url)


@app.command()
def stop(name: Name, url: Url = None) -> None:
    """Stop a connector (its offsets can then be altered or reset)."""
    _target(name, "stop", url)


@app.command()
def restart(
    name: Name,
    include_tasks: Annotated[bool, typer.Option("--include-tasks")] = False,
    only_failed: Annotated[bool, typer.Option("--only-failed")] = False,
    url: Url = None,
) -> None:
    """Restart a connector (and its task)."""
    query = f"includeTasks={str(include_tasks).lower()}&onlyFailed={str(only_failed).lower()}"
    call(url, "POST", f"/connectors/{name}/restart?{query}")
    console.print(f"{name}: restart requested")


@app.command()
def offsets(name: Name, url: Url = None) -> None:
    """The committed source offsets of a connector."""
    body = call(url, "GET", f"/connectors/{name}/offsets").json()
    table = Table("partition", "offset")
    for entry in body["offsets"]:
        table.add_row(
            json.dumps(entry["partition"], sort_keys=True),
            json.dumps(entry["offset"], sort_keys=True),
        )
    console.print(table)


@app.command()
def delete(name: Name, url: Url = None) -> None:
    """Delete a connector (its offsets stay in the offsets topic)."""
    call(url, "DELETE", f"/connectors/{name}")
    console.print(f"{name}: deleted")


# -- standalone verbs (no Kafka): check, discover, read ---------------------------------------

PluginName = Annotated[str, typer.Argument(help="Connector plugin (e.g. spreadsheet)")]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Connector config (YAML/JSON, flat or {name, config})"),
]
Sets = Annotated[
    list[str] | None, typer.Option("--set", help="Config key=value (repeatable; overrides)")
]
PathOpt = Annotated[
    Path | None, typer.Option("--path", help="Shorthand for --set path=FILE (one file)")
]


def _standalone(
    plugin: str, config: Path | None, sets: list[str] | None, path: Path | None
) -> SourceConnector:
    from hub.connect_standalone import build_standalone, parse_sets, read_config_file

    merged = {**read_config_file(config), **parse_sets(sets or [])}
    if path is not None:
        merged["path"] = str(path)
    return build_standalone(plugin, merged)[1]


@app.command()
def check(
    plugin: PluginName, config: ConfigFile = None, set_: Sets = None, path: PathOpt = None
) -> None:
    """Check a connector config and that its source answers (no Kafka)."""
    connector = _standalone(plugin, config, set_, path)
    connector.check()
    console.print(f"[green]ok[/] {connector.name}: config valid, source reachable")


@app.command()
def discover(
    plugin: PluginName, config: ConfigFile = None, set_: Sets = None, path: PathOpt = None
) -> None:
    """Print the connector's streams as a Singer catalog (JSON)."""
    from hub.connect_standalone import avro_schemas
    from hub.sdk.standalone import catalog

    connector = _standalone(plugin, config, set_, path)
    schemas = avro_schemas(connector, load_settings().schemas_dir)
    typer.echo(json.dumps(catalog(connector, schemas), indent=2))


@app.command()
def read(
    plugin: PluginName,
    config: ConfigFile = None,
    set_: Sets = None,
    path: PathOpt = None,
    state: Annotated[
        Path | None, typer.Option("--state", help="Resume from this state (Singer STATE)")
    ] = None,
) -> None:
    """Read the source to its end and print Singer messages (SCHEMA, RECORD, STATE) as JSON
    lines on stdout, without Kafka. Unreadable records are reported on stderr."""
    import sys

    from hub.connect_standalone import avro_schemas
    from hub.sdk.standalone import SingerReader, load_state

    connector = _standalone(plugin, config, set_, path)
    schemas = avro_schemas(connector, load_settings().schemas_dir)
    offsets = None
    if state is not None:
        try:
            with state.open(encoding="utf-8") as f:
                offsets = load_state(f)
        except OSError as exc:
            raise ConfigError(f"state file {state}: cannot read ({exc.strerror})") from None
    reader = SingerReader(connector, schemas, sys.stdout, sys.stderr, state=offsets)
    reader.run()
    sys.stdout.flush()
