"""The one way a Doudi process opens a channel to another service.

Addresses are ``host:port`` (one process, as ``doudi run`` starts them) or
``dns:///name:port`` (every replica behind a Kubernetes headless Service).
The channel balances calls round-robin over every address the name resolves
to: gRPC keeps one long-lived HTTP/2 connection per backend, so without this
all of a client's calls would go to whichever replica it met first.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from doudi.common.tls import TlsSettings
from doudi.common.tracing import ObservedChannel

# Every Doudi RPC may be retried: reads, and writes that are idempotent (a request id, or
# a create that answers the stored record). So a call that finds its peer UNAVAILABLE
# (restarting, or its database connection lost) is retried twice, quickly, by gRPC itself.
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


# After a peer restarts, reconnect within a second rather than gRPC's default backoff
# (up to two minutes), so a redeployed service is back in use at once.
OPTIONS = [
    ("grpc.service_config", SERVICE_CONFIG),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Answers between the platform's services may pass gRPC's 4 MiB default: a screening
    # batch of 1,000 persons answers every visit they had in a year (~450 bytes each).
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def channel(address: str, tls: TlsSettings) -> grpc.aio.Channel:
    """A channel to ``address``, with TLS as ``tls`` says (doudi.common.tls).

    A call made with ``wait_for_ready=True`` while the peer restarts waits for it (within
    the call's deadline) instead of failing: the gateway's calls do. The outboxes'
    senders do not: a peer that is down must not hold up the write that queued the
    change, which its sender delivers when the peer is back (doudi.common.outbox). Every
    call carries the current request id and, when the process traces, its span's
    context (doudi.common.tracing.ObservedChannel).
    """
    credentials = tls.channel_credentials()
    if credentials is None:
        return ObservedChannel(grpc.aio.insecure_channel(address, options=OPTIONS))
    return ObservedChannel(grpc.aio.secure_channel(address, credentials, options=OPTIONS))


def sync_channel(address: str, tls: TlsSettings | None = None) -> grpc.Channel:
    """A blocking channel (the ``doudi`` command's), with TLS as ``tls`` says (unset: as the
    environment's DOUDI_TLS_* say)."""
    credentials = (TlsSettings() if tls is None else tls).channel_credentials()
    if credentials is None:
        return grpc.insecure_channel(address, options=OPTIONS)
    return grpc.secure_channel(address, credentials, options=OPTIONS)


_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def _health_call(channel: grpc.Channel | grpc.aio.Channel) -> Any:
    # Through the channel's generic call: the HealthStub's typing stubs declare no methods.
    return channel.unary_unary(
        _HEALTH_CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


def serving_status(channel: grpc.Channel, timeout: float) -> str:
    """A service's overall health (``SERVING``, ``NOT_SERVING``...), ``UNAVAILABLE`` if it
    does not answer."""
    try:
        answer = _health_call(channel)(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.RpcError:
        return "UNAVAILABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


async def serving_status_async(channel: grpc.aio.Channel, timeout: float) -> str:
    """:func:`serving_status` on an asyncio channel."""
    try:
        answer = await _health_call(channel)(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.RpcError:
        return "UNAVAILABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
