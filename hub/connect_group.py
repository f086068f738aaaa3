"""Which connect worker runs which connector: Kafka's own consumer-group membership.

Every ``crmhub worker connect`` joins one consumer group on the group topic
(``_hub-connect-group``, ``GROUP_PARTITIONS`` partitions that never hold a record). The
group coordinator tracks the members and the group leader assigns the partitions with
the ``roundrobin`` assignor; a worker runs the connectors whose placement slot
(``ConnectState.slot_of``, the lowest free slot at creation) maps to a partition it holds:
``slot % GROUP_PARTITIONS``. Slots handed out in order and round-robin partitions spread
connectors evenly over the members.

When a member dies (kill -9, lost host) the coordinator notices after the session timeout
and the survivors rebalance; a member that joins triggers the same. The protocol is
eager: every member's ``on_revoke`` runs before anything is reassigned, and it stops the
connectors of the revoked partitions (each commits what was acknowledged) before it
returns, so a connector never runs on two live members at once; the new owner resumes
from the committed cursor. A member cut off from the cluster keeps running until it
notices the lost session; its records are then published twice at most, and the
projections drop the copies by event id (at-least-once).

Why not Kafka Connect's own ``connect`` protocol (incremental cooperative): librdkafka
only implements the consumer protocol, so this reuses it with a topic whose partitions
are slots. Cooperative-sticky would move fewer connectors on a membership change; its
sticky ranges do not alternate slots between members, so the even spread above would
need a different slot-to-partition map (a next step).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hub.broker import ensure_topics

log = logging.getLogger(__name__)

GROUP_TOPIC = "_hub-connect-group"
GROUP_ID = "hub-connect-workers"
GROUP_PARTITIONS = 32


def partition_of(slot: int) -> int:
    return slot % GROUP_PARTITIONS


class GroupMembership:
    """One worker's membership; ``poll`` serves heartbeats' results and rebalances.

    ``on_revoked(partitions)`` is called (from ``poll``, in the caller's thread) before the
    partitions go to another member: stop what runs on them there."""

    def __init__(
        self,
        bootstrap: str,
        *,
        member: str,
        on_revoked: Callable[[set[int]], None],
        group_id: str = GROUP_ID,
        topic: str = GROUP_TOPIC,
        session_timeout_ms: int = 6000,
    ) -> None:
        self.topic = topic
        self.member = member
        self._on_revoked = on_revoked
        self._owned: set[int] = set()
        self._lock = threading.Lock()
        self.generation = 0  # assignments received
        ensure_topics(bootstrap, {topic: (GROUP_PARTITIONS, {})})
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "client.id": member,
                "partition.assignment.strategy": "roundrobin",
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
            }
        )
        self._consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked)

    # -- callbacks (run inside poll) ------------------------------------------------------

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._owned |= {p.partition for p in partitions}
            self.generation += 1
            owned = sorted(self._owned)
        log.info("connect group: %s holds slots %s", self.member, owned)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {p.partition for p in partitions}
        try:
            self._on_revoked(revoked)
        finally:
            with self._lock:
                self._owned -= revoked

    # -- use ------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> None:
        try:
            msg = self._consumer.poll(timeout)
        except KafkaException as exc:
            log.warning("connect group: %s", exc.args[0] if exc.args else exc)
            return
        if msg is not None and msg.error() is not None:
            log.warning("connect group: %s", msg.error())

    def owns(self, slot: int) -> bool:
        with self._lock:
            return partition_of(slot) in self._owned

    def owned(self) -> set[int]:
        with self._lock:
            return set(self._owned)

    def close(self) -> None:
        """Leave the group (the others rebalance at once, not after a session timeout)."""
        try:
            self._consumer.close()
        except KafkaException as exc:
            log.warning("connect group: leaving: %s", exc.args[0] if exc.args else exc)


__all__ = ["GROUP_ID", "GROUP_PARTITIONS", "GROUP_TOPIC", "GroupMembership", "partition_of"]
