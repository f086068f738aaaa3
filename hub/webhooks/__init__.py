"""Signed webhook receivers on the hub's API.

- ``base``: what a connector plugin gives (``WebhookSpec``: its signature scheme, secret,
  streams and body reader) and ``BadPayload``;
- ``signatures``: HubSpot v3 and Zendesk signatures, the timestamp window, ``ReplayGuard``;
- ``publisher``: ``await publish(...)`` that returns once Kafka acknowledged (acks=all);
- ``endpoints``: a connector's endpoint built from its config in ``ConnectState``;
- ``receiver``: ``POST /webhooks/{connector}`` (``WebhookService`` and the ASGI
  ``WebhookMiddleware`` that serves it ahead of the app's routing);
- ``http``: the receiver's metrics and raw ASGI answers.

See docs/webhooks.md.
"""
