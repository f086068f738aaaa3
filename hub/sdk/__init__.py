"""The connector SDK: what a connector author uses.

- ``hub.sdk.streams``: streams, records, cursors and the connector base class;
- ``hub.sdk.http``: an HTTP client with timeouts, retries (exponential backoff with
  jitter, ``Retry-After`` and rate-limit headers honoured) and errors by recovery;
- ``hub.sdk.standalone``: ``check``, ``discover`` and ``read`` without Kafka (Singer
  messages on stdout);
- ``hub.sdk.testing``: the contract test class every connector runs.

The runtime that runs connectors against Kafka (runner, worker, state, REST API) is in
``hub.connect*``.
"""
