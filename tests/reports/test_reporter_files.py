"""A reporter downloads every file they sent: each incident's evidence and each message's files, listed on
/fall, decrypted while they stream, audited without content, and never for another reporter's session."""

from __future__ import annotations

import json

from sqlalchemy import select

from service.audit.models import AuditEvent
from service.evidence.models import Attachment
from service.runtime import Runtime
from tests.support.evidence import PDF, TEXT, browsers, download_links, file_report, png, sign_in
from tests.support.forms import csrf_token


def test_every_file_the_reporter_sent_is_listed_and_downloads_as_sent(runtime: Runtime) -> None:
    with browsers(runtime) as open_browser:
        reporter = open_browser.new()
        sent = [
            ("attachments", ("Screenshot Kommentar.pdf", PDF, "application/pdf")),
            ("attachments", ("Chatverlauf.txt", TEXT, "text/plain")),
        ]
        receipt = file_report(reporter, sent)
        page = sign_in(reporter, receipt)
        # A message with a file of its own: listed beside the message.
        token = csrf_token(page)
        answered = reporter.post(
            "/fall/nachricht",
            data={"csrf_token": token, "message": "Noch ein Foto."},
            files=[("message_files", ("Foto.png", png(), "image/png"))],
            follow_redirects=False,
        )
        assert answered.status_code == 303, answered.text
        page = reporter.get("/fall").text
        assert "Screenshot Kommentar.pdf" in page
        assert "Chatverlauf.txt" in page
        assert "Foto.png" in page
        links = download_links(page)
        assert len(links) == 3

        downloads = {}
        for href in links:
            response = reporter.get(href)
            assert response.status_code == 200
            assert response.headers["content-disposition"].startswith("attachment;")
            downloads[response.headers["content-type"].split(";")[0]] = response.content
        # Byte for byte what was sent (the PNG carried no metadata, so re-encoding kept it decodable).
        assert downloads["application/pdf"] == PDF
        assert downloads["text/plain"] == TEXT
        assert downloads["image/png"].startswith(b"\x89PNG")

        # Each download is audited: which case and which file, nothing of its name or content.
        with runtime.sessions() as db:
            events = db.scalars(select(AuditEvent).where(AuditEvent.action == "attachment.download")).all()
            ids = set(db.scalars(select(Attachment.id)).all())
        assert len(events) == 3
        for event in events:
            assert event.actor_kind == "reporter"
            assert event.actor_id is None
            assert event.details is not None
            assert set(event.details) == {"attachment_id"}
            assert event.details["attachment_id"] in ids
            recorded = json.dumps(event.details)
            assert "Screenshot" not in recorded
            assert "Chatverlauf" not in recorded

        # Another reporter, signed in with a case of their own, gets 404 for each of these files.
        stranger = open_browser.new()
        sign_in(stranger, file_report(stranger, []))
        for href in links:
            assert stranger.get(href).status_code == 404
        # Without a session the link leads to the sign-in page.
        assert open_browser.new().get(links[0], follow_redirects=False).status_code == 303
