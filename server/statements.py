"""GET /statements/{id}.pdf: a statement as a PDF.

Same bearer token and same authorization as the GraphQL field: the caller is authenticated exactly as for
/graphql, needs READ_BILLING (the scope on ``Practice.billing``), and sees only the statements the billing
access query lets them see (anything else is 404, as ``node`` gives null).
"""

from __future__ import annotations

import string
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import fontpkg_noto_sans
import justmytype_intl_cjk
from fontTools import subset
from fontTools.ttLib import TTFont
from fontTools.varLib import instancer
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

# Fonts: names print in every patient's alphabet. Noto Sans (Latin, Greek, Cyrillic; package fontpkg-noto-sans) is the
# statement's face; the CJK faces of Noto Sans JP, SC, TC and KR (package justmytype-intl-cjk) stand in, in that
# order, for the characters it lacks. All are under the SIL Open Font License 1.1, which allows embedding.
FONT = "NotoSans"
BASE_FONT = Path(fontpkg_noto_sans.ROOT) / "files" / "NotoSans[wdth,wght].ttf"
_CJK = Path(justmytype_intl_cjk.__file__).resolve().parent / "fonts" / "ofl"
FALLBACK_FONTS = tuple(
    _CJK / f"notosans{code}" / f"NotoSans{code.upper()}[wght].ttf" for code in ("jp", "sc", "tc", "kr")
)
REGULAR, BOLD = 400, 700
# Characters every statement may print besides its names and descriptions (labels, dates, amounts, kinds).
FIXED_TEXT = string.printable


async def statement_pdf(request: Request) -> Response:
    state = request.app.state
    credentials = await authenticate(request.headers.get("authorization"), codec=state.codec, now=state.clock.now())
    viewer = credentials.viewer
    if viewer is None:
        return _error(
            401, "UNAUTHENTICATED", credentials.error or "authentication required", {"WWW-Authenticate": "Bearer"}
        )
    if not viewer.has_scope(TokenScope.READ_BILLING):
        return _error(403, "FORBIDDEN", "statements need the token scope READ_BILLING")
    ctx = Context(
        settings=state.settings,
        clock=state.clock,
        codec=state.codec,
        request_id=getattr(request.state, "request_id", None) or uuid.uuid4().hex,
        viewer=viewer,
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
        headers={
            "Content-Disposition": f'inline; filename="statement-{statement.number}.pdf"',
            "Cache-Control": "no-store",
        },
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Errors shaped like GraphQL's, so clients read one format."""
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status, headers=headers
    )


# ------------------------------------------------------------------ rendering


def render_statement(statement: Statement, entries: Sequence[BillingEntry], *, practice_name: str) -> bytes:
    """The statement's PDF: who and when, the opening balance, each entry with the running balance, the closing balance.

    ``statement`` comes with its chart, clinician and creator; ``entries`` are its frozen entries, oldest first.
    """
    names = [practice_name, statement.chart.patient_name, statement.clinician.name, *(e.description for e in entries)]
    pdf = FPDF(format="A4")
    with tempfile.TemporaryDirectory(prefix="statement-fonts-") as directory:
        _add_fonts(pdf, Path(directory), {*FIXED_TEXT, *"".join(names)})
        pdf.set_title(f"Statement {statement.number}")
        pdf.set_author(practice_name)
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
                table.row(
                    [
                        entry.occurred_on.isoformat(),
                        entry.kind.value.title(),
                        entry.description,
                        _amount(billing.entry_amount(entry)),
                        _amount(billing.money(balance)),
                    ]
                )
        pdf.ln(4)
        pdf.set_font(FONT, "B", 12)
        _line(pdf, f"Closing balance: {_amount(billing.money(statement.closing_cents))}")
        return bytes(pdf.output())


def _line(pdf: FPDF, text: str, *, height: float = 7) -> None:
    pdf.cell(text=text, h=height, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _amount(value: Money) -> str:
    return f"{value.currency} {value.amount:,.2f}"


# ------------------------------------------------------------------ fonts


def _add_fonts(pdf: FPDF, directory: Path, characters: set[str]) -> None:
    """Register the statement's faces for ``characters``: Noto Sans regular and bold, and a CJK fallback for each
    character Noto Sans lacks (only the fallbacks some character needs, so a Latin statement loads no CJK font).

    The packaged fonts are variable fonts whose CJK default instance is Thin; instancing a whole font takes seconds,
    so each face is first cut down to the characters this statement prints, then instanced at its weight (about a
    quarter of a second a face) into ``directory``, which must outlive ``pdf.output()``.
    """
    codepoints = {ord(c) for c in characters if not c.isspace() or c == " "}
    pdf.add_font(FONT, "", _static_face(BASE_FONT, codepoints, REGULAR, directory / "regular.ttf"))
    pdf.add_font(FONT, "B", _static_face(BASE_FONT, codepoints, BOLD, directory / "bold.ttf"))
    missing = codepoints - _coverage(BASE_FONT)
    fallbacks = []
    for number, path in enumerate(FALLBACK_FONTS):
        covered = missing & _coverage(path)
        if not covered:
            continue
        family = f"{FONT}Fallback{number}"
        pdf.add_font(family, "", _static_face(path, covered, REGULAR, directory / f"{family}.ttf"))
        fallbacks.append(family)
        missing -= covered
    if fallbacks:
        pdf.set_fallback_fonts(fallbacks, exact_match=False)


@lru_cache(maxsize=len(FALLBACK_FONTS) + 1)
def _coverage(path: Path) -> frozenset[int]:
    """The code points a font has glyphs for (read once per process)."""
    return frozenset(TTFont(path, lazy=True).getBestCmap())


def _static_face(path: Path, codepoints: Iterable[int], weight: int, target: Path) -> Path:
    """A static instance of the variable font at ``path``, at ``weight``, holding only ``codepoints``, saved as
    ``target``."""
    font = TTFont(path, lazy=True)
    options = subset.Options()
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=set(codepoints))
    subsetter.subset(font)
    axes = {axis.axisTag: axis.defaultValue for axis in font["fvar"].axes} | {"wght": weight}
    instancer.instantiateVariableFont(font, axes, inplace=True, static=True)
    font.save(target)
    return target
