"""The reference path for bench/settle.py: FastAPI -> gRPC -> one-row PostgreSQL insert.

    python bench/reference.py grpc --port P --database-url URL [--driver sqlalchemy|psycopg]
    python bench/reference.py http --port Q --grpc-address 127.0.0.1:P

The least a write can do through the platform's kind of stack: parse a JSON
body (uvicorn with uvloop and httptools, FastAPI), make one grpc.aio call,
insert one row, answer 201. Two database layers:

* ``sqlalchemy``: the platform's own (SQLAlchemy Core on psycopg through
  ``doudi.common.db``, the transaction in a thread), the ratio's reference;
* ``psycopg``: psycopg's asyncio connections on the event loop, no ORM layer
  and no thread, to show what the database layer itself costs.

The settlement path's rate is reported as a ratio of these, measured in the
same run on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg
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


INSERT = rows.insert().returning(rows.c.row_id)
CONNECTIONS = 10


async def serve_grpc(port: int, database_url: str, driver: str) -> None:
    engine = create_engine_for(database_url)
    metadata.create_all(engine)

    def insert(payload: bytes) -> int:
        with write_transaction(engine) as connection:
            return int(
                connection.execute(
                    INSERT, {"payload": payload.decode(), "created_at": datetime.now(UTC)}
                ).scalar_one()
            )

    pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    if driver == "psycopg":
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        for _ in range(CONNECTIONS):
            pool.put_nowait(await psycopg.AsyncConnection.connect(dsn))

    async def insert_async(payload: bytes) -> int:
        connection = await pool.get()
        try:
            async with connection.transaction():
                cursor = await connection.execute(
                    "INSERT INTO reference_rows (payload, created_at) VALUES (%s, %s) "
                    "RETURNING row_id",
                    (payload.decode(), datetime.now(UTC)),
                )
                row = await cursor.fetchone()
        finally:
            pool.put_nowait(connection)
        assert row is not None
        return int(row[0])

    async def handle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        if driver == "psycopg":
            return str(await insert_async(request)).encode()
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

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with grpc.aio.insecure_channel(grpc_address) as channel:
            state["insert"] = channel.unary_unary(METHOD)
            yield

    app = FastAPI(lifespan=lifespan)

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
    parser.add_argument("--driver", choices=["sqlalchemy", "psycopg"], default="sqlalchemy")
    args = parser.parse_args()
    if args.part == "grpc":
        asyncio.run(serve_grpc(args.port, args.database_url, args.driver))
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
