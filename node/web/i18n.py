"""German first, English second: choosing the language and the interface's texts.

The language comes from ``?lang=``, then the ``pn_lang`` cookie that ``?lang=`` sets,
then ``Accept-Language``; German when nothing matches.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

LANGUAGE_COOKIE = "pn_lang"


class Language(enum.StrEnum):
    DE = "de"
    EN = "en"


_ACCEPT_ITEM = re.compile(r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?")


def _parse(value: str | None) -> Language | None:
    if value is None:
        return None
    try:
        return Language(value.strip().lower())
    except ValueError:
        return None


def _from_accept_language(header: str | None) -> Language | None:
    best: tuple[float, int, Language] | None = None
    for index, item in enumerate((header or "").split(",")):
        match = _ACCEPT_ITEM.match(item)
        language = _parse(match.group(1)) if match else None
        if match is None or language is None:
            continue
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        if quality > 0 and (best is None or (quality, -index) > (best[0], best[1])):
            best = (quality, -index, language)
    return best[2] if best else None


def choose_language(query: str | None, cookie: str | None, accept: str | None) -> Language:
    return _parse(query) or _parse(cookie) or _from_accept_language(accept) or Language.DE


# key -> (German, English). Placeholders use str.format names.
TEXTS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "skip": ("Zum Inhalt springen", "Skip to content"),
        "site": ("Praxisnetz", "Praxisnetz"),
        "nav.main": ("Hauptnavigation", "Main navigation"),
        "nav.home": ("Startseite", "Home"),
        "nav.dashboard": ("Übersicht", "Dashboard"),
        "nav.new": ("Neuer Beitrag", "New contribution"),
        "nav.following": ("Folgen", "Following"),
        "nav.timeline": ("Neues von anderen", "Timeline"),
        "nav.signin": ("Anmelden", "Sign in"),
        "nav.signout": ("Abmelden", "Sign out"),
        "footer.node": ("Praxisnetz-Knoten", "Praxisnetz node"),
        "footer.atom": ("Atom-Feed", "Atom feed"),
        "signed_in_as": ("Angemeldet als {name}", "Signed in as {name}"),
        "kind.practice": ("Praxisbeispiel", "Practice"),
        "kind.experience": ("Erfahrungsbericht", "Experience"),
        "kind.stance": ("Stellungnahme", "Stance"),
        "kind.material": ("Material", "Material"),
        "kind.comment": ("Kommentar", "Comment"),
        "kinds.practice": ("Praxisbeispiele", "Practices"),
        "kinds.experience": ("Erfahrungsberichte", "Experiences"),
        "kinds.stance": ("Stellungnahmen", "Stances"),
        "kinds.material": ("Materialien", "Materials"),
        "kinds.comment": ("Kommentare", "Comments"),
        "nodekind.city": ("Stadt", "City"),
        "nodekind.municipality": ("Gemeinde", "Municipality"),
        "nodekind.district": ("Kreis", "District"),
        "nodekind.association": ("Verband", "Association"),
        "status.planned": ("geplant", "planned"),
        "status.piloting": ("in Erprobung", "piloting"),
        "status.in-operation": ("im Betrieb", "in operation"),
        "status.discontinued": ("eingestellt", "discontinued"),
        "position.agree": ("Zustimmung", "Agrees"),
        "position.disagree": ("Widerspruch", "Disagrees"),
        "position.partly": ("Teilweise Zustimmung", "Partly agrees"),
        "home.profile": ("Profil", "Profile"),
        "home.kind": ("Art", "Kind"),
        "home.state": ("Land", "State"),
        "home.ags": ("Amtlicher Gemeindeschlüssel", "Official municipality key"),
        "home.handle": ("Adresse zum Folgen", "Handle to follow"),
        "home.followers": ("Folgende", "Followers"),
        "home.following": ("Folgt", "Following"),
        "home.by_kind": ("Beiträge nach Art", "Contributions by kind"),
        "home.by_topic": ("Beiträge nach Thema", "Contributions by topic"),
        "home.none": ("Noch keine Beiträge.", "No contributions yet."),
        "c.steps": ("Schritte", "Steps"),
        "c.status": ("Stand", "Status"),
        "c.topics": ("Themen", "Topics"),
        "c.effort": ("Aufwand", "Effort"),
        "c.duration": ("Dauer der Umsetzung", "Implementation time"),
        "c.lessons": ("Was wir gelernt haben", "Lessons learned"),
        "c.legal_basis": ("Rechtsgrundlagen", "Legal basis"),
        "c.details": ("Eckdaten", "Key facts"),
        "c.published": ("Veröffentlicht", "Published"),
        "c.updated": ("Aktualisiert", "Updated"),
        "c.by": ("von", "by"),
        "c.about": ("Bezieht sich auf", "About"),
        "c.position": ("Position", "Position"),
        "c.reason": ("Begründung", "Reason"),
        "c.materials": ("Materialien", "Materials"),
        "c.download": ("Herunterladen", "Download"),
        "c.document": ("Dokument", "Document"),
        "c.license": ("Lizenz", "License"),
        "c.responses": ("Wer zustimmt und wer widerspricht", "Who agrees and who disagrees"),
        "c.no_stances": ("Noch keine Stellungnahmen.", "No stances yet."),
        "c.comments": ("Kommentare", "Comments"),
        "c.no_comments": ("Noch keine Kommentare.", "No comments yet."),
        "c.respond": ("Stellung nehmen oder kommentieren", "Respond with a stance or comment"),
        "signin.title": ("Anmeldung für Mitarbeitende", "Sign-in for staff"),
        "signin.username": ("Benutzername", "User name"),
        "signin.password": ("Passwort", "Password"),
        "signin.submit": ("Anmelden", "Sign in"),
        "signin.wrong": ("Benutzername oder Passwort ist falsch.", "Wrong user name or password."),
        "signin.locked": (
            "Zu viele Fehlversuche. Die Anmeldung ist von hier aus bis {until} UTC gesperrt.",
            "Too many failed attempts. Signing in from here is locked until {until} UTC.",
        ),
        "csrf.refused": (
            "Das Formular ist abgelaufen oder stammt nicht von dieser Seite. Bitte erneut senden.",
            "The form expired or did not come from this site. Please send it again.",
        ),
        "dash.title": ("Übersicht", "Dashboard"),
        "dash.own": ("Eigene Beiträge", "Own contributions"),
        "dash.none": ("Noch keine eigenen Beiträge.", "No contributions yet."),
        "dash.delivery_note": (
            "Abgeschlossene Zustellungen werden nach der Aufbewahrungszeit gelöscht "
            "([delivery] settled_retention_days, 30 Tage voreingestellt); die Zahlen zeigen, "
            "was noch gespeichert ist.",
            "Finished deliveries are deleted after the retention period "
            "([delivery] settled_retention_days, 30 days by default); the counts show what is "
            "still stored.",
        ),
        "dash.title_col": ("Titel", "Title"),
        "dash.kind_col": ("Art", "Kind"),
        "dash.updated_col": ("Geändert", "Updated"),
        "dash.delivery_col": ("Zustellung", "Delivery"),
        "dash.actions_col": ("Aktionen", "Actions"),
        "dash.edit": ("Bearbeiten", "Edit"),
        "dash.delete": ("Löschen", "Delete"),
        "dash.deliveries": ("Zustellung", "Delivery"),
        "dash.create": ("Neuen Beitrag anlegen", "Create a contribution"),
        "dash.upload": ("Material hochladen", "Upload material"),
        "dash.saved": ("Gespeichert und veröffentlicht.", "Saved and published."),
        "dash.deleted": ("Gelöscht.", "Deleted."),
        "dash.unchanged": ("Keine Änderung.", "Nothing changed."),
        "form.new": ("Neuer Beitrag: {kind}", "New {kind}"),
        "form.edit": ("Bearbeiten: {title}", "Edit: {title}"),
        "form.errors": ("Bitte prüfen Sie {count} Angabe(n):", "Please check {count} field(s):"),
        "form.required": ("Pflichtfeld", "required"),
        "form.slug": ("Kurzname in der Adresse", "Short name in the address"),
        "form.slug_help": (
            "Kleinbuchstaben, Ziffern und Bindestriche, z. B. e-akte-bauamt; "
            "leer lassen, um ihn aus dem Titel zu bilden",
            "Lower-case letters, digits and hyphens, e.g. e-akte-bauamt; "
            "leave empty to derive it from the title",
        ),
        "form.title": ("Titel", "Title"),
        "form.summary": ("Zusammenfassung", "Summary"),
        "form.body": ("Text (Markdown)", "Text (Markdown)"),
        "form.topics": ("Themen", "Topics"),
        "form.status": ("Stand", "Status"),
        "form.none": ("– keine Angabe –", "– not given –"),
        "form.steps": ("Schritte (einer pro Zeile)", "Steps (one per line)"),
        "form.effort": ("Aufwand", "Effort"),
        "form.duration": (
            "Dauer der Umsetzung (ISO 8601, z. B. P6M)",
            "Time to implement (ISO 8601, e.g. P6M)",
        ),
        "form.lessons": ("Was wir gelernt haben", "Lessons learned"),
        "form.legal_basis": (
            "Rechtsgrundlagen (eine URL pro Zeile)",
            "Legal basis (one URL per line)",
        ),
        "form.related_service": (
            "LeiKa-Schlüssel der Leistung (14 Ziffern)",
            "LeiKa service key (14 digits)",
        ),
        "form.about": (
            "Adresse (URL) des Beitrags, auf den Sie sich beziehen",
            "URL of the contribution this is about",
        ),
        "form.position": ("Position", "Position"),
        "form.reason": ("Begründung", "Reason"),
        "form.url": ("Adresse (URL) des Dokuments", "URL of the document"),
        "form.media_type": ("Medientyp, z. B. application/pdf", "Media type, e.g. application/pdf"),
        "form.license": ("Lizenz (URL)", "License (URL)"),
        "form.language": ("Sprache des Textes", "Language of the text"),
        "form.file": ("Datei", "File"),
        "form.file_help": (
            "Erlaubt: {types}; höchstens {size} MB.",
            "Allowed: {types}; at most {size} MB.",
        ),
        "form.preview": ("Vorschau", "Preview"),
        "form.publish": ("Veröffentlichen", "Publish"),
        "form.upload": ("Hochladen und veröffentlichen", "Upload and publish"),
        "preview.title": ("Vorschau – noch nicht veröffentlicht", "Preview – not published yet"),
        "preview.note": (
            "So wird der Beitrag aussehen. Prüfen Sie ihn und veröffentlichen Sie ihn unten.",
            "This is how the contribution will look. Check it and publish it below.",
        ),
        "delete.title": ("Beitrag löschen: {title}", "Delete contribution: {title}"),
        "delete.question": (
            "Der Beitrag wird gelöscht und allen Folgenden als gelöscht gemeldet.",
            "The contribution will be deleted and its deletion sent to all followers.",
        ),
        "delete.confirm": ("Endgültig löschen", "Delete for good"),
        "delete.cancel": ("Abbrechen", "Cancel"),
        "deliv.title": ("Zustellung: {title}", "Delivery: {title}"),
        "deliv.host": ("Server", "Host"),
        "deliv.delivered": ("zugestellt", "delivered"),
        "deliv.pending": ("ausstehend", "pending"),
        "deliv.failing": ("fehlgeschlagen", "failing"),
        "deliv.none": ("Noch nichts zu versenden.", "Nothing to send yet."),
        "deliv.error": ("Letzter Fehler", "Last error"),
        "follow.title": ("Folgen", "Following"),
        "follow.target": (
            "Kommune, Hub oder Thema: Adresse oder URL",
            "Municipality, hub or topic: handle or URL",
        ),
        "follow.target_help": (
            "z. B. acct:dueren@dueren.example oder https://hub.example/topics/e-akte",
            "e.g. acct:dueren@dueren.example or https://hub.example/topics/e-akte",
        ),
        "follow.submit": ("Folgen", "Follow"),
        "follow.unfollow": ("Nicht mehr folgen", "Unfollow"),
        "follow.list": ("Sie folgen", "You follow"),
        "follow.none": ("Sie folgen noch niemandem.", "You do not follow anyone yet."),
        "follow.followers": ("Ihnen folgen", "Your followers"),
        "follow.state.requested": ("angefragt", "requested"),
        "follow.state.accepted": ("bestätigt", "accepted"),
        "follow.state.rejected": ("abgelehnt", "rejected"),
        "follow.sent": ("Anfrage gesendet.", "Request sent."),
        "follow.removed": ("Nicht mehr gefolgt.", "Unfollowed."),
        "timeline.title": ("Neues von anderen", "Timeline"),
        "timeline.none": ("Noch nichts eingegangen.", "Nothing received yet."),
        "timeline.older": ("Ältere Einträge", "Older entries"),
        "timeline.respond": ("Stellung nehmen", "Respond"),
        # the hub's public pages and editor screens (node.web.hub_public, hub_editor)
        "hub.nav": ("Handbuch und Hub", "Handbook and hub"),
        "hub.handbook": ("Handbuch", "Handbook"),
        "hub.editions": ("Ausgaben des Handbuchs", "Editions of the handbook"),
        "hub.draft": ("Entwurf der nächsten Ausgabe", "Draft of the next edition"),
        "hub.members": ("Mitglieder", "Members"),
        "hub.topics": ("Themen", "Topics"),
        "hub.search": ("Suche", "Search"),
        "hub.sparql": ("SPARQL", "SPARQL"),
        "hub.editor": ("Redaktion", "Editors"),
        "hub.stances": (
            "{agree} Zustimmung, {disagree} Widerspruch, {partly} teilweise",
            "{agree} agree, {disagree} disagree, {partly} partly",
        ),
        "hub.comments": ("{count} Kommentare", "{count} comments"),
        "hub.reasons": ("Begründungen der Stellungnahmen", "Reasons given with the stances"),
        "hub.objections": ("Begründungen von Widerspruch und teilweiser Zustimmung",
                           "Reasons given with disagreement and partial agreement"),
        "hub.reason_full": ("(ganze Begründung anzeigen)", "(show the whole reason)"),
        "hub.more_reasons": ("{count} weitere Begründungen", "{count} more reasons"),
        "hub.reasons_capped": ("Hier stehen die ersten {count} Begründungen; alle liefert "
                               "/api/hub/feedback.",
                               "The first {count} reasons are shown here; /api/hub/feedback "
                               "gives all of them."),
        "hub.position.agree": ("Zustimmung", "Agree"),
        "hub.position.disagree": ("Widerspruch", "Disagree"),
        "hub.position.partly": ("Teilweise", "Partly"),
        "hub.section_empty": ("Noch keine Beiträge.", "No contributions yet."),
        "hub.current_edition": ("Aktuelle Ausgabe: {number}.", "Current edition: {number}."),
        "hub.read_edition": ("Ausgabe {number} lesen", "Read edition {number}"),
        "hub.changelog": ("Änderungen", "Changes"),
        "hub.changelog_of": ("Änderungen in Ausgabe {number}", "Changes in edition {number}"),
        "hub.no_edition": ("Es gibt noch keine Ausgabe.", "There is no edition yet."),
        "hub.frozen": ("Die Ausgabe ist eingefroren.", "The edition is frozen."),
        "hub.edition": ("Ausgabe {number}", "Edition {number}"),
        "hub.contribution_count": ("{count} Beiträge", "{count} contributions"),
        "hub.draft_title": ("Entwurf der Ausgabe {number}", "Draft of edition {number}"),
        "hub.draft_intro": (
            "So sähe die nächste Ausgabe aus, wenn die Redaktion sie jetzt einfröre.",
            "This is the next edition as it would be frozen now.",
        ),
        "hub.member_name": ("Name", "Name"),
        "hub.member_kind": ("Art", "Kind"),
        "hub.member_state": ("Stand", "State"),
        "hub.state.pending": ("beantragt", "applied"),
        "hub.state.approved": ("aufgenommen", "approved"),
        "hub.state.rejected": ("abgelehnt", "rejected"),
        "hub.state.left": ("ausgetreten", "left"),
        "hub.no_members": ("Noch keine Mitglieder.", "No members yet."),
        "hub.topics_intro": (
            "Jedem Thema kann man folgen, auch ohne Mitglied zu sein.",
            "Anyone can follow a topic, member or not.",
        ),
        "hub.follow_handle": ("folgen über", "follow as"),
        "hub.search_topic": ("Suche im Thema {name}", "Search the topic {name}"),
        "hub.sparql_title": ("SPARQL-Beispiele", "SPARQL examples"),
        "hub.sparql_intro": (
            "Der Hub beantwortet SPARQL-1.1-Abfragen (nur lesend) unter /sparql.",
            "The hub answers read-only SPARQL 1.1 queries at /sparql.",
        ),
        "hub.sparql_query": ("Abfrage", "Query"),
        "hub.sparql_run": ("Ausführen", "Run"),
        "hub.search_query": ("Suchbegriffe", "Search terms"),
        "hub.search_submit": ("Suchen", "Search"),
        "hub.filter_topic": ("Thema", "Topic"),
        "hub.filter_kind": ("Art", "Kind"),
        "hub.filter_municipality": ("Kommune (AGS)", "Municipality (AGS)"),
        "hub.filter_municipality_help": (
            "Amtlicher Gemeindeschlüssel, 8 Ziffern",
            "Official municipality key, 8 digits",
        ),
        "hub.filter_status": ("Stand", "Status"),
        "hub.filter_any": ("alle", "any"),
        "hub.filter_invalid": ("Bitte einen Wert aus der Liste wählen.", "Choose a listed value."),
        "hub.kind.practice": ("Praxisbeispiel", "Practice"),
        "hub.kind.experience": ("Erfahrung", "Experience"),
        "hub.kind.stance": ("Stellungnahme", "Stance"),
        "hub.kind.material": ("Material", "Material"),
        "hub.kind.comment": ("Kommentar", "Comment"),
        "hub.kind.other": ("Sonstiges", "Other"),
        "hub.results": ("{count} Treffer", "{count} results"),
        "hub.no_results": ("Nichts gefunden.", "Nothing found."),
        "hub.search_filling": (
            "Der Hub baut seine Suche nach dem Start aus der Datenbank auf ({read} von "
            "{expected} Dokumenten gelesen). Bitte versuchen Sie es gleich noch einmal.",
            "The hub is filling its search from its database after its start ({read} of "
            "{expected} documents read). Please try again shortly."),
        "hub.editor_nav": ("Redaktion", "Editors"),
        "hub.triage": ("Eingang", "Triage"),
        "hub.triage_empty": ("Alles entschieden.", "Everything is decided."),
        "hub.triage_range": ("Beiträge {first} bis {last} von {total}",
                             "Contributions {first} to {last} of {total}"),
        "hub.pages": ("Seiten", "Pages"),
        "hub.page_previous": ("Vorherige Seite", "Previous page"),
        "hub.page_next": ("Nächste Seite", "Next page"),
        "hub.sections": ("Abschnitte", "Sections"),
        "hub.preview": ("Vorschau der Ausgabe", "Edition preview"),
        "hub.preview_title": ("Vorschau der Ausgabe {number}", "Preview of edition {number}"),
        "hub.freeze": ("Einfrieren", "Freeze"),
        "hub.approvals": ("Mitgliedsanträge", "Membership applications"),
        "hub.problem": ("{field}: {message}", "{field}: {message}"),
        "hub.done.placed": ("Entscheidung gespeichert.", "Decision saved."),
        "hub.done.saved": ("Abschnitt gespeichert.", "Section saved."),
        "hub.done.approved": ("Mitglied aufgenommen.", "Member approved."),
        "hub.done.rejected": ("Antrag abgelehnt.", "Application rejected."),
        "hub.contribution": ("Beitrag", "Contribution"),
        "hub.contribution_url": ("Adresse (URL) des Beitrags", "Contribution URL"),
        "hub.stance_counts": ("Stellungnahmen", "Stances"),
        "hub.decision": ("Entscheidung", "Decision"),
        "hub.decision.accept": ("aufnehmen", "accept"),
        "hub.decision.defer": ("zurückstellen", "defer"),
        "hub.decision.decline": ("ablehnen", "decline"),
        "hub.undecided": ("offen", "open"),
        "hub.action": ("Aktion", "Action"),
        "hub.place": ("Einordnen", "Place"),
        "hub.place_title": ("„{title}“ einordnen", "Place “{title}”"),
        "hub.sections_for": ("In diese Abschnitte", "Into these sections"),
        "hub.note": ("Notiz der Redaktion", "Editor's note"),
        "hub.order": ("Reihenfolge", "Order"),
        "hub.order_help": ("leer: ans Ende", "empty: at the end"),
        "hub.save_decision": ("Entscheidung speichern", "Save decision"),
        "hub.section_edit": ("Abschnitt „{title}“ bearbeiten", "Edit section “{title}”"),
        "hub.title_de": ("Titel (deutsch)", "Title (German)"),
        "hub.title_en": ("Titel (englisch)", "Title (English)"),
        "hub.editorial_text": ("Redaktioneller Text (Markdown)", "Editorial text (Markdown)"),
        "hub.save": ("Speichern", "Save"),
        "hub.placed_here": ("Beiträge in diesem Abschnitt", "Contributions in this section"),
        "hub.freeze_title": ("Ausgabe {number} einfrieren", "Freeze edition {number}"),
        "hub.freeze_states": (
            "Eingefroren wird Ausgabe {number}: {count} Beiträge in {sections} Abschnitten, "
            "jeweils in der jetzt vorliegenden signierten Fassung.",
            "This freezes edition {number}: {count} contributions in {sections} sections, "
            "each in its signed version as it is now.",
        ),
        "hub.freeze_permanent": (
            "Eine eingefrorene Ausgabe lässt sich nicht mehr ändern.",
            "A frozen edition can never be changed.",
        ),
        "hub.freeze_problem.confirm": (
            "Bitte bestätigen Sie das Einfrieren auf dieser Seite.",
            "Please confirm freezing on this page.",
        ),
        "hub.freeze_problem.placements": (
            "Es ist noch kein angenommener Beitrag einem Abschnitt zugeordnet.",
            "No accepted contribution is placed in a section yet.",
        ),
        "hub.freeze_problem.other": ("Einfrieren nicht möglich ({field}).", "Cannot freeze ({field})."),
        "hub.publish_too": ("Gleich veröffentlichen (an die Folgenden senden)", "Publish at once (send to followers)"),
        "hub.freeze_button": ("Ausgabe {number} endgültig einfrieren", "Freeze edition {number} for good"),
        "hub.pending": ("Offene Anträge", "Pending applications"),
        "hub.no_pending": ("Keine offenen Anträge.", "No pending applications."),
        "hub.approve": ("Aufnehmen", "Approve"),
        "hub.reject": ("Ablehnen", "Reject"),
    }
)

# parse_contribution_input speaks English; the German interface shows these instead.
GERMAN_PROBLEMS: Mapping[str, str] = MappingProxyType({
    "is required": "Bitte ausfüllen.",
    "must be text": "Bitte Text eingeben.",
    "unknown field": "Unbekanntes Feld.",
    "must be an http(s) URL": "Bitte eine http(s)-Adresse angeben.",
    "only a practice has a status": "Nur ein Praxisbeispiel hat einen Stand.",
    "only a stance has a position": "Nur eine Stellungnahme hat eine Position.",
    "only a material has this field": "Nur ein Material hat diese Angabe.",
    "a LeiKa key has 14 digits": "Ein LeiKa-Schlüssel hat 14 Ziffern.",
    "a language tag such as de or en": "Ein Sprachkürzel wie de oder en.",
    "a media type such as application/pdf": "Ein Medientyp wie application/pdf.",
    "an ISO 8601 duration such as P6M (six months) or P1Y":
        "Eine Dauer nach ISO 8601, z. B. P6M (sechs Monate) oder P1Y.",
    "use lower-case letters, digits and inner hyphens (e.g. e-akte-bauamt)":
        "Nur Kleinbuchstaben, Ziffern und Bindestriche (z. B. e-akte-bauamt).",
    "must be a list of non-empty texts": "Bitte keine leeren Einträge.",
    "at most 100 entries": "Höchstens 100 Einträge.",
})  # fmt: skip


# Messages with a variable part: (pattern, German with the groups put back).
GERMAN_PROBLEM_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^at most (\d+) characters$"), r"Höchstens \1 Zeichen."),
    (re.compile(r"^must be a whole number from (\d+) to (\d+)$"),
     r"Bitte eine ganze Zahl von \1 bis \2 angeben."),
    (re.compile(r"^must be one of (.+)$"), r"Bitte einen dieser Werte wählen: \1."),
    (re.compile(r"^a (stance|comment) needs the URL of what it is about$"),
     "Bitte die Adresse (URL) des Beitrags angeben, auf den Sie sich beziehen."),
    (re.compile(r"^a stance needs a position \(.*\)$"),
     "Bitte wählen Sie Zustimmung, Widerspruch oder teilweise Zustimmung."),
    (re.compile(r"^unknown topic\(s\): (.+)$"), r"Unbekannte Themen: \1."),
    (re.compile(r"^'(.+)' is already used; update it instead$"),
     r"„\1“ ist schon vergeben; bitte einen anderen Kurznamen wählen."),
    (re.compile(r"^'(.+)' was deleted; choose another slug$"),
     r"„\1“ wurde gelöscht; bitte einen anderen Kurznamen wählen."),
)  # fmt: skip


@dataclass(frozen=True)
class Translator:
    """``t("key", name=...)`` in templates and handlers."""

    language: Language

    def __call__(self, key: str, **values: object) -> str:
        pair = TEXTS.get(key)
        if pair is None:
            return key
        text = pair[0] if self.language is Language.DE else pair[1]
        return text.format(**values) if values else text

    def problem(self, message: str) -> str:
        """A field problem's message in the interface language (German where known)."""
        if self.language is not Language.DE:
            return message
        if message in GERMAN_PROBLEMS:
            return GERMAN_PROBLEMS[message]
        for pattern, german in GERMAN_PROBLEM_PATTERNS:
            if pattern.match(message):
                return pattern.sub(german, message)
        return message
