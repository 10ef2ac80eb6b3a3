"""The baseline for the intake benchmark: a bare FastAPI endpoint that inserts one row of the same size.

Same PostgreSQL, same uvicorn setup, same JSON body; no validation against the taxonomy, no routing, no
encryption. The ratio of the two rates is what our care costs.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, LargeBinary, String, create_engine, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from service.db import new_id
from service.hardening import NO_TELEMETRY

# A case with its incident, grants and extract is about this many bytes of ciphertext and key material.
ROW_BYTES = int(os.environ.get("BENCH_ROW_BYTES", "6000"))


class Base(DeclarativeBase):
    pass


class BaselineRow(Base):
    __tablename__ = "bench_baseline_row"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)


def create_app() -> FastAPI:
    engine = create_engine(os.environ["RUECKHALT_DATABASE_URL"], pool_size=10, max_overflow=10)
    Base.metadata.create_all(engine)
    factory = sessionmaker(bind=engine)
    app = FastAPI(telemetry=NO_TELEMETRY)  # as the service (like for like)

    @app.post("/api/v1/reports", status_code=201)
    def insert(payload: dict[str, Any], request: Request) -> JSONResponse:
        body = (repr(payload).encode() * (ROW_BYTES // 64 + 1))[:ROW_BYTES]
        session: Session = factory()
        try:
            session.add(BaselineRow(id=new_id(), body=body))
            session.commit()
        finally:
            session.close()
        return JSONResponse({"receipt": "-", "routed_to": []}, status_code=201)

    add_health(app, engine)
    return app


def add_health(app: FastAPI, engine: Engine) -> None:
    """`/healthz` for the bench's start-up wait, once the database answers (this app's and the floor's)."""

    @app.get("/healthz")
    def health() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}
