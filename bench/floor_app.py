"""The floor for the intake benchmark: the bare baseline plus only what a report cannot do without.

Issue 16 asks for an intake at half the bare baseline's rate. This app measures whether any intake could get
there under the issue's own conditions ("no weaker crypto, no lost durability, the rate limit still shared
across processes"), by doing exactly that much and nothing else, as cheaply as it can be done:

- the rate limit shared across processes: one atomic Redis call per report (the intake's own Lua script);
- one new data key, the report sealed under it (AES-256-GCM), and one hybrid post-quantum HPKE wrap of the
  key (ML-KEM-768 + X25519) per organisation that holds it from the start, through ``service.crypto``, the
  same calls the intake makes;
- as many rows as the intake stores for the same report (the sealed report, the wrapped keys and small
  rows for the rest), in one ``INSERT`` of a single narrow table with no index but its key (the intake's
  tables have foreign keys and indexes), then the commit before the 201.

No validation against the taxonomy, no routing decision, no statistics extract, no audit, no outbox publish:
everything the intake does beyond this is left out. ``bench.intake`` reads the number of wraps and rows
from what the intake stored for the same body (``BENCH_FLOOR_WRAPS``, ``BENCH_FLOOR_ROWS``) and runs this app
in the same alternating rounds, so the floor's rate is an upper bound for any intake that keeps those three
promises on this machine and stores each report in its own statement. (Since session 17 the intake stores
the reports that arrive while its statements are busy together, in one statement: ``service.group_commit``;
it then passes the floor, which does not.)
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Column, LargeBinary, MetaData, String, Table, create_engine, insert

from bench.baseline_app import add_health
from service.crypto import Context, generate_keypair, new_data_key, seal, wrap_key
from service.db import new_id
from service.hardening import NO_TELEMETRY
from service.ratelimit.service import RedisCounter

WRAPS = int(os.environ.get("BENCH_FLOOR_WRAPS", "3"))
ROWS = int(os.environ.get("BENCH_FLOOR_ROWS", "10"))
# The intake's rows besides the report and the keys carry ids, times, codes and short ciphertexts.
FILLER = os.urandom(200)

metadata = MetaData()
floor_row = Table(
    "bench_floor_row",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("body", LargeBinary),
)


def create_app() -> FastAPI:
    engine = create_engine(os.environ["RUECKHALT_DATABASE_URL"], pool_size=10, max_overflow=10)
    metadata.create_all(engine)
    counter = RedisCounter(os.environ["RUECKHALT_REDIS_URL"])
    holders = [generate_keypair()[1] for _ in range(WRAPS)]
    app = FastAPI(telemetry=NO_TELEMETRY)  # as the service (like for like)

    @app.post("/api/v1/reports", status_code=201)
    def insert_report(payload: dict[str, Any], request: Request) -> JSONResponse:
        counter.hit(f"floor:{request.client.host if request.client else '-'}", 3600)
        case_id = new_id()
        data_key = new_data_key()
        sealed = seal(data_key, json.dumps(payload).encode(), Context("incident", case_id))
        wrapped = [
            wrap_key(data_key, holder, Context("case_key", case_id, str(i)))
            for i, holder in enumerate(holders)
        ]
        # The sealed report and each wrapped key a row of its own, as the intake stores them; the intake's
        # other rows (incident, routing record, extract, outbox message, ...) as small rows of their own.
        bodies = [sealed, *wrapped, *[FILLER] * max(ROWS - 1 - len(wrapped), 0)]
        rows = [{"id": new_id(), "body": body} for body in bodies]
        with engine.begin() as connection:  # committed before the 201, as the intake's unit of work
            connection.execute(insert(floor_row), rows)
        return JSONResponse({"receipt": "-", "routed_to": []}, status_code=201)

    add_health(app, engine)
    return app
