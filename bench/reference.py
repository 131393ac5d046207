"""The reference path for bench/settle.py: FastAPI -> gRPC -> one-row PostgreSQL insert.

    python bench/reference.py grpc --port P --database-url URL
    python bench/reference.py http --port Q --grpc-address 127.0.0.1:P

The same stack the platform uses (uvicorn with uvloop and httptools, a
grpc.aio server and client, SQLAlchemy Core on psycopg through
``doudi.common.db``, the database work in a thread), doing the least a write
can do: parse a JSON body, make one gRPC call, insert one row, answer 201. The
settlement path's rate is reported as a ratio of this one's, measured in the
same run on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import grpc
import sqlalchemy
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from doudi.common.db import create_engine_for, write_transaction

metadata = sqlalchemy.MetaData()
rows = sqlalchemy.Table(
    "reference_rows",
    metadata,
    sqlalchemy.Column("row_id", sqlalchemy.BigInteger, primary_key=True, autoincrement=True),
    sqlalchemy.Column("payload", sqlalchemy.Text, nullable=False),
    sqlalchemy.Column("created_at", sqlalchemy.DateTime(timezone=True), nullable=False),
)
METHOD = "/bench.Reference/Insert"


async def serve_grpc(port: int, database_url: str) -> None:
    engine = create_engine_for(database_url)
    metadata.create_all(engine)

    def insert(payload: bytes) -> int:
        with write_transaction(engine) as connection:
            return int(
                connection.execute(
                    rows.insert()
                    .values(payload=payload.decode(), created_at=datetime.now(UTC))
                    .returning(rows.c.row_id)
                ).scalar_one()
            )

    async def handle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return str(await asyncio.to_thread(insert, request)).encode()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "bench.Reference",
                {"Insert": grpc.unary_unary_rpc_method_handler(handle)},
            )
        ]
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def http_app(grpc_address: str) -> FastAPI:
    state: dict[str, Any] = {}
    app = FastAPI()

    @app.on_event("startup")
    async def open_channel() -> None:
        state["channel"] = grpc.aio.insecure_channel(grpc_address)
        state["insert"] = state["channel"].unary_unary(METHOD)

    @app.post("/reference", status_code=201)
    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        row_id = await state["insert"](json.dumps(body).encode(), timeout=5)
        return JSONResponse({"row_id": int(row_id)}, status_code=201)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["grpc", "http"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--grpc-address")
    args = parser.parse_args()
    if args.part == "grpc":
        asyncio.run(serve_grpc(args.port, args.database_url))
    else:
        uvicorn.run(
            http_app(args.grpc_address),
            host="127.0.0.1",
            port=args.port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
        )


if __name__ == "__main__":
    main()
