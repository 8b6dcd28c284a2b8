"""GET /statements/{id}.pdf: a statement as a PDF.

Same bearer token and same authorization as the GraphQL field: the caller is authenticated exactly as for
/graphql, needs READ_BILLING (the scope on ``Practice.billing``), and sees only the statements the billing
access query lets them see (anything else is 404, as ``node`` gives null).
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.credentials import authenticate
from models import BillingEntry, Statement
from models.enums import TokenScope
from resolvers import audit, billing, ids
from resolvers.context import Context
from resolvers.money import Money

FONT = "Helvetica"


async def statement_pdf(request: Request) -> Response:
    state = request.app.state
    credentials = await authenticate(request.headers.get("authorization"), codec=state.codec, now=state.clock.now())
    viewer = credentials.viewer
    if viewer is None:
        return _error(401, "UNAUTHENTICATED", credentials.error or "authentication required", {"WWW-Authenticate": "Bearer"})
    if not viewer.has_scope(TokenScope.READ_BILLING):
        return _error(403, "FORBIDDEN", "statements need the token scope READ_BILLING")
    ctx = Context(
        settings=state.settings,
        clock=state.clock,
        codec=state.codec,
        request_id=getattr(request.state, "request_id", None) or uuid.uuid4().hex,
        viewer=viewer,
        request=request,
        client_address=request.client.host if request.client else None,
    )
    parsed = ids.parse(request.path_params["statement_id"])
    statement = await billing.find_statement(ctx, parsed[1]) if parsed and parsed[0] == "Statement" else None
    if statement is None:
        return _error(404, "NOT_FOUND", "no such statement")
    entries = await billing.all_statement_entries(statement)
    await audit.record(ctx, "billing.statement_downloaded", ids.encode("Statement", statement.id))
    pdf = await run_in_threadpool(render_statement, statement, entries, practice_name=viewer.practice.name)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="statement-{statement.number}.pdf"', "Cache-Control": "no-store"},
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Errors shaped like GraphQL's, so clients read one format."""
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status, headers=headers)


# ------------------------------------------------------------------ rendering


def render_statement(statement: Statement, entries: Sequence[BillingEntry], *, practice_name: str) -> bytes:
    """The statement's PDF: who and when, the opening balance, each entry with the running balance, the closing balance.

    ``statement`` comes with its chart, clinician and creator; ``entries`` are its frozen entries, oldest first.
    """
    pdf = FPDF(format="A4")
    pdf.set_title(_text(f"Statement {statement.number}"))
    pdf.set_author(_text(practice_name))
    pdf.set_creation_date(statement.created_at)
    pdf.add_page()

    pdf.set_font(FONT, "B", 16)
    _line(pdf, practice_name, height=9)
    pdf.set_font(FONT, "", 11)
    _line(pdf, f"Statement {statement.number}")
    _line(pdf, f"Patient: {statement.chart.patient_name}")
    _line(pdf, f"Clinician: {statement.clinician.name}")
    _line(pdf, f"Period: {statement.period_start.isoformat()} to {statement.period_end.isoformat()}")
    pdf.ln(4)
    _line(pdf, f"Opening balance: {_amount(billing.money(statement.opening_cents))}")
    pdf.ln(2)

    balance = statement.opening_cents
    with pdf.table(col_widths=(24, 26, 70, 35, 35), text_align=("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT")) as table:
        table.row(["Date", "Kind", "Description", "Amount", "Balance"])
        for entry in entries:
            balance += entry.delta_cents
            table.row([
                entry.occurred_on.isoformat(),
                entry.kind.value.title(),
                _text(entry.description),
                _amount(billing.entry_amount(entry)),
                _amount(billing.money(balance)),
            ])
    pdf.ln(4)
    pdf.set_font(FONT, "B", 12)
    _line(pdf, f"Closing balance: {_amount(billing.money(statement.closing_cents))}")
    return bytes(pdf.output())


def _line(pdf: FPDF, text: str, *, height: float = 7) -> None:
    pdf.cell(text=_text(text), h=height, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _amount(value: Money) -> str:
    return f"{value.currency} {value.amount:,.2f}"


def _text(value: str) -> str:
    """Text the PDF's built-in fonts can show (Latin-1): accents outside it fall back to the bare letter, the rest to '?'."""
    out = []
    for char in value:
        if ord(char) < 256:
            out.append(char)
            continue
        base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode("latin-1")
        out.append(base or "?")
    return "".join(out)
