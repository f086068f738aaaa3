"""The embedded, Confluent-compatible schema registry.

- ``hub.registry.compat``: pure logic (schema parsing and identity, compatibility levels and
  checks, the registry's errors); no Kafka, no HTTP.
- ``hub.registry.store``: ``SchemaStore``, the state kept in the compacted ``_schemas`` topic.
- ``hub.registry.api``: the REST subset as a FastAPI ``router`` (store from
  ``app.state.schema_store``) and ``create_registry_app(store)``.

Any Confluent-compatible registry replaces it when ``HUB_SCHEMA_REGISTRY_URL`` is set.
"""
