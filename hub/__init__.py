"""CRM Event Hub core: settings, errors, events, serde, runtime and processors."""

__version__ = "0.1.0"
