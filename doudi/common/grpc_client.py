"""The one way a Doudi process opens a channel to another service.

Addresses are ``host:port`` (one process, as ``doudi run`` starts them) or
``dns:///name:port`` (every replica behind a Kubernetes headless Service).
The channel balances calls round-robin over every address the name resolves
to: gRPC keeps one long-lived HTTP/2 connection per backend, so without this
all of a client's calls would go to whichever replica it met first.
"""

from __future__ import annotations

import json

import grpc

SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel(address: str) -> grpc.aio.Channel:
    """An insecure channel inside the cluster (mTLS belongs to the service mesh)."""
    return grpc.aio.insecure_channel(address, options=[("grpc.service_config", SERVICE_CONFIG)])
