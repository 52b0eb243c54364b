"""The console's pages and the htmx fragments they swap in.

Every handler reads and writes through the api's own route functions, with the caller's
workspace store and visibility viewer: the console sees exactly what the JSON api would show
the same person, and changes nothing the api would refuse them.
"""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from mailsync_api.console import forms, words
from mailsync_api.console.session import (
    COOKIE,
    COOKIE_PATH,
    CallerDep,
    NotAllowedError,
    SignInRequiredError,
    bearer_token,
)
from mailsync_api.dependencies import ContextDep, DbDep, authenticate
from mailsync_api.mailbox_summary import sync_summary
from mailsync_api.pagination import PageParams
from mailsync_api.problems import ProblemError, answer_problem
from mailsync_api.routes import (
    associations,
    capture_rules,
    companies,
    contacts,
    deals,
    mailboxes,
    threads,
)
from mailsync_api.schemas.associations import ThreadLinksIn
from mailsync_api.schemas.common import RecordId
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount, SyncPolicy

HERE = Path(__file__).parent
STATIC = {"htmx.min.js": "text/javascript", "console.css": "text/css"}
PAGE = PageParams(limit=50, cursor=None)

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["words"] = words

router = APIRouter(prefix="/console", include_in_schema=False)


# Pages load nothing but the api's own script and stylesheet, run no inline script, and are
# never framed (a framed page could be clicked through: one click links a thread).
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=SECURITY_HEADERS
    )


def redirect(request: Request, url: str) -> Response:
    """Go to `url`: a plain redirect, or for an htmx request the header htmx follows."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.get("")
async def sign_in_page(request: Request, db: DbDep) -> Response:
    """The sign-in page, or the mailboxes for someone signed in already."""
    token = request.cookies.get(COOKIE)
    if token:
        try:
            await authenticate(request, db, token)
        except ProblemError:
            pass
        else:
            return redirect(request, "/console/mailboxes")
    return render(request, "sign_in.html")


@router.post("/sign-in")
async def sign_in(request: Request, db: DbDep) -> Response:
    """Check a personal token and keep it in an HTTP-only cookie for the console."""
    token = forms.one(await forms.read_form(request), "token")
    try:
        principal = await authenticate(request, db, token)
    except ProblemError:
        return render(request, "sign_in.html", 401, error="That token is not valid.")
    if not principal.is_person:
        return render(
            request,
            "sign_in.html",
            401,
            error="That is a system's API key; sign in with your personal token.",
        )
    response = RedirectResponse("/console/mailboxes", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """Forget the console's cookie."""
    response = redirect(request, "/console")
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """htmx and the stylesheet, served by the api itself (no CDN)."""
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(
        HERE / "static" / name,
        media_type=STATIC[name],
        headers={"cache-control": "public, max-age=3600"},
    )


@router.get("/mailboxes")
async def mailboxes_page(request: Request, caller: CallerDep) -> Response:
    """Every mailbox with its state, progress, gaps, defects and errors."""
    found = await mailboxes.list_mailboxes(caller.store, caller.principal.viewer)
    return render(request, "mailboxes.html", caller=caller, mailboxes=found)


@router.get("/mailboxes/new")
async def connect_page(request: Request, caller: CallerDep) -> Response:
    """The form that connects the person's own mailbox."""
    return render(request, "connect.html", caller=caller)


@router.post("/mailboxes/review")
async def review_connection(request: Request, caller: CallerDep) -> Response:
    """The three answers for the mailbox as filled in, before anything is saved."""
    try:
        body = forms.mailbox_in(await forms.read_form(request))
    except ValidationError as error:
        return render(request, "_problems.html", 422, problems=forms.problems(error))
    unsaved = MailboxDocument(
        workspace_id=caller.store.workspace_id,
        address=body.address,
        display_name=body.display_name,
        owner_user_id=caller.principal.user_id,
        imap=ServerAccount(host=body.imap.host, port=body.imap.port, username=""),
        smtp=ServerAccount(host=body.smtp.host, port=body.smtp.port, username=""),
        sync=SyncPolicy(scope=body.sync.scope, backfill_days=body.sync.backfill_days),
        visibility=body.visibility,
        append_to_sent=body.append_to_sent,
    )
    return render(request, "_connect_review.html", summary=sync_summary(unsaved), body=body)


@router.post("/mailboxes")
async def connect(request: Request, caller: CallerDep, context: ContextDep) -> Response:
    """Connect the mailbox as reviewed: both logins are tried first, as by the api."""
    try:
        body = forms.mailbox_in(await forms.read_form(request))
        connected = await mailboxes.connect_mailbox(
            body,
            caller.store,
            caller.principal,
            context.settings,
            context.cipher,
            context.publisher,
        )
    except ValidationError as error:
        return render(request, "_problems.html", 422, problems=forms.problems(error))
    except ProblemError as error:
        return render(request, "_problems.html", error.status, problems=[error.detail])
    return redirect(request, f"/console/mailboxes/{connected.id}")


@router.get("/mailboxes/{mailbox_id}")
async def mailbox_page(request: Request, mailbox_id: RecordId, caller: CallerDep) -> Response:
    """One mailbox: the three answers, progress per folder, gaps, defects, errors."""
    mailbox = await mailboxes.get_mailbox(mailbox_id, caller.store, caller.principal.viewer)
    summary = await mailboxes.get_sync_summary(mailbox_id, caller.store)
    return render(request, "mailbox.html", caller=caller, mailbox=mailbox, summary=summary)


@router.get("/contacts")
async def contacts_page(request: Request, caller: CallerDep) -> Response:
    """Contacts, newest first."""
    page = await contacts.list_contacts(caller.store, PAGE)
    return render(request, "records.html", caller=caller, kind="contacts", items=page.items)


@router.get("/companies")
async def companies_page(request: Request, caller: CallerDep) -> Response:
    """Companies, newest first."""
    page = await companies.list_companies(caller.store, PAGE)
    return render(request, "records.html", caller=caller, kind="companies", items=page.items)


@router.get("/deals")
async def deals_page(request: Request, caller: CallerDep) -> Response:
    """Deals, newest first."""
    page = await deals.list_deals(caller.store, PAGE)
    return render(request, "records.html", caller=caller, kind="deals", items=page.items)


@router.get("/contacts/{contact_id}")
async def contact_timeline(request: Request, contact_id: RecordId, caller: CallerDep) -> Response:
    """A contact's threads, as mailbox visibility lets the person see them."""
    record = await contacts.get_contact(contact_id, caller.store)
    page = await contacts.contact_timeline(contact_id, caller.store, caller.principal.viewer, PAGE)
    return render(
        request, "timeline.html", caller=caller, kind="contact", record=record, threads=page.items
    )


@router.get("/companies/{company_id}")
async def company_timeline(request: Request, company_id: RecordId, caller: CallerDep) -> Response:
    """A company's threads, as mailbox visibility lets the person see them."""
    record = await companies.get_company(company_id, caller.store)
    page = await companies.company_timeline(company_id, caller.store, caller.principal.viewer, PAGE)
    return render(
        request, "timeline.html", caller=caller, kind="company", record=record, threads=page.items
    )


@router.get("/deals/{deal_id}")
async def deal_timeline(request: Request, deal_id: RecordId, caller: CallerDep) -> Response:
    """A deal's threads, as mailbox visibility lets the person see them."""
    record = await deals.get_deal(deal_id, caller.store)
    page = await deals.deal_timeline(deal_id, caller.store, caller.principal.viewer, PAGE)
    return render(
        request, "timeline.html", caller=caller, kind="deal", record=record, threads=page.items
    )


@router.get("/threads/unassigned")
async def unassigned_page(request: Request, caller: CallerDep) -> Response:
    """Threads linked to no record, each with its suggestions and a one-click link."""
    page = await threads.list_threads(caller.store, caller.principal.viewer, PAGE, unassigned=True)
    rows = []
    for thread in page.items:
        found = await associations.suggest_links(thread.id, caller.store, caller.principal)
        rows.append((thread, found.suggestions))
    return render(request, "unassigned.html", caller=caller, rows=rows)


@router.post("/threads/{thread_id}/links")
async def link_thread(
    request: Request, thread_id: RecordId, caller: CallerDep, context: ContextDep
) -> Response:
    """Link the thread to one suggested record (its other links stay)."""
    current = await threads.get_thread(thread_id, caller.store, caller.principal.viewer)
    form = await forms.read_form(request)
    record_type, record_id = forms.one(form, "record_type"), forms.one(form, "record_id")
    field = {"contact": "contact_ids", "company": "company_ids", "deal": "deal_ids"}.get(
        record_type
    )
    if field is None or not record_id:
        return render(request, "_problems.html", 422, problems=["choose a record to link"])
    links = {
        "contact_ids": current.contact_ids,
        "company_ids": current.company_ids,
        "deal_ids": current.deal_ids,
    }
    links[field] = [*links[field], record_id]
    try:
        linked = await associations.set_links(
            thread_id,
            ThreadLinksIn.model_validate(links),
            caller.store,
            caller.principal,
            context.publisher,
        )
    except ValidationError as error:
        return render(request, "_problems.html", 422, problems=forms.problems(error))
    except ProblemError as error:
        return render(request, "_problems.html", error.status, problems=[error.detail])
    return render(request, "_linked.html", thread=current, linked=linked)


@router.get("/capture-rules")
async def capture_rules_page(request: Request, caller: CallerDep, db: DbDep) -> Response:
    """The capture rules, with a preview of a change before it is applied."""
    rules = await capture_rules.get_capture_rules(caller.store, db)
    return render(request, "capture_rules.html", caller=caller, rules=rules)


@router.post("/capture-rules/preview")
async def preview_capture_rules(request: Request, caller: CallerDep, db: DbDep) -> Response:
    """What the rules as edited would change over the logged mail; nothing is saved."""
    try:
        body = forms.capture_rules_in(await forms.read_form(request))
    except ValidationError as error:
        return render(request, "_problems.html", 422, problems=forms.problems(error))
    preview = await capture_rules.preview_capture_rules(body, caller.store, db)
    return render(request, "_rule_preview.html", preview=preview)


@router.post("/capture-rules")
async def apply_capture_rules(
    request: Request, caller: CallerDep, db: DbDep, context: ContextDep
) -> Response:
    """Save the rules as edited and re-decide the logged mail, as previewed."""
    try:
        body = forms.capture_rules_in(await forms.read_form(request))
    except ValidationError as error:
        return render(request, "_problems.html", 422, problems=forms.problems(error))
    applied = await capture_rules.apply_capture_rules(
        body, caller.store, db, caller.principal, context.publisher
    )
    return render(request, "_rule_applied.html", applied=applied)


def install_console(app: FastAPI) -> None:
    """Mount the console on the api, with the answers for a missing or refused sign-in."""

    @app.exception_handler(SignInRequiredError)
    async def sign_in_required(request: Request, error: SignInRequiredError) -> Response:
        return redirect(request, "/console")

    @app.exception_handler(NotAllowedError)
    async def not_allowed(request: Request, error: NotAllowedError) -> Response:
        return render(request, "problem.html", 403, title="Not allowed", detail=error.detail)

    @app.exception_handler(ProblemError)
    async def problem(request: Request, error: ProblemError) -> Response:
        """A page for a person in the console; the api's problem answer for everyone else."""
        if request.url.path.startswith(COOKIE_PATH) and bearer_token(request) is None:
            return render(
                request, "problem.html", error.status, title=error.title, detail=error.detail
            )
        return await answer_problem(request, error)

    app.include_router(router)
