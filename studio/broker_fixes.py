"""Keep a Celery worker alive through a Redis restart.

With kombu 5.7 and redis-py 8, when Redis goes away while a worker holds unacknowledged messages
(``acks_late``), the consumer closes its connection, and closing the channel tries to give those
messages back to Redis through a client built from the transport's ``client``, which the closing
connection has already dropped: ``AttributeError: 'NoneType' object has no attribute 'hostname'``
in ``kombu/transport/redis.py`` (``Channel._connparams``). Celery only expects connection errors
there, so the AttributeError ends the worker ("Unrecoverable error") and the queue stops. The same
failure (a channel closed after its connection let go, ending in ``_connparams``) was reported
upstream as celery/kombu#582 ("Error on restarting Gossip"). It depends on timing: in our runs of
14 Redis restarts under a busy worker it ended one run of two without this guard, none with it.

Raising redis' ``ConnectionError`` instead is what the callers handle: the channel's close is
abandoned like any close on a dead broker, the consumer reconnects, and the messages it could not
give back stay in Redis' unacked hash, which Redis redelivers after the visibility timeout (and
``jobs.queue`` re-sends sooner for job rows). ``tests/training/test_jobs_faults.py`` replays
the failing close in one step against a real redis-server, and restarts Redis under a working
worker. No Django here: the Celery app imports it.
"""

from __future__ import annotations


def keep_workers_alive_through_redis_restarts() -> None:
    try:  # here: Redis support is optional (a filesystem broker needs none)
        import redis
        from kombu.transport import redis as transport
    except ImportError:  # no Redis support installed: nothing to fix
        return
    channel = transport.Channel
    if getattr(channel, "_studio_closed_client_guard", False):
        return
    original = channel._connparams

    def _connparams(self, *args, **kwargs):
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection is closed")
        return original(self, *args, **kwargs)

    channel._connparams = _connparams
    channel._studio_closed_client_guard = True
