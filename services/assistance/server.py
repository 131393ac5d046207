"""The assistance service's gRPC server: ``python -m services.assistance``."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy

from doudi import __version__
from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.common.grpc_server import (
    Authenticator,
    Registrar,
    ServiceSpec,
    Setup,
    internal_authenticator,
    require,
    run_service,
)
from doudi.common.migrations import current_revision
from services.assistance.settings import DEFAULT_PORT, Settings

SPEC = ServiceSpec(
    name="assistance",
    service_name="doudi.assistance.v1.AssistanceService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)


class AssistanceServicer(assistance_pb2_grpc.AssistanceServiceServicer):
    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    async def GetServiceInfo(
        self,
        request: assistance_pb2.GetServiceInfoRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetServiceInfoResponse:
        require("internal")
        revision = await asyncio.to_thread(current_revision, self.engine)
        return assistance_pb2.GetServiceInfoResponse(
            schema_revision=revision or "", version=__version__
        )


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, _stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        servicer = AssistanceServicer(engine)

        def register(server: grpc.aio.Server) -> None:
            assistance_pb2_grpc.add_AssistanceServiceServicer_to_server(servicer, server)

        return register, internal_authenticator(settings)

    return build


def main() -> None:
    settings = Settings()
    run_service(SPEC, settings, setup(settings))
