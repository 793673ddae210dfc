"""The PDF of an edition, written with fpdf2 (pure Python, no system libraries).

Called through ``render.render_pdf``, which prepares the chapters; this module only
lays them out: title page, contents, then chapters, sections and contributions
with their municipality, a link to the original, the stance counts and the reasons
given with the stances.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF

from node.hub.contribution import html_to_text
from node.hub.editions import EditionManifest
from node.hub.render import (
    ReasonLine,
    RenderedChapter,
    RenderedContribution,
    RenderedSection,
    position_label,
)

FAMILY = "HandbookSans"
LINE = 5.5


class _EditionPdf(FPDF):
    def __init__(self, unicode_font: Path | None) -> None:
        super().__init__(format="A4")
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(20, 18, 20)
        self._unicode = unicode_font is not None
        if unicode_font is not None:
            self.add_font(FAMILY, "", str(unicode_font))
            bold = unicode_font.with_name(unicode_font.stem + "-Bold" + unicode_font.suffix)
            self.add_font(FAMILY, "B", str(bold if bold.is_file() else unicode_font))
        self.base_family = FAMILY if self._unicode else "Helvetica"
        self._widths: dict[tuple[str, str, float, str], float] = {}

    def text_of(self, text: str) -> str:
        """Core fonts know Latin-1 only: replace what they cannot show."""
        if self._unicode:
            return text
        replaced = text.replace("„", '"').replace("“", '"').replace("–", "-").replace("…", "...")
        return replaced.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.base_family, "", 8)
        self.cell(0, 6, str(self.page_no()), align="C")

    def heading(self, text: str, size: int) -> None:
        self.set_font(self.base_family, "B", size)
        self._lines(text, size * 0.5)
        self.ln(2)

    def paragraph(self, text: str, size: int = 10) -> None:
        if not text:
            return
        self.set_font(self.base_family, "", size)
        self._lines(text, LINE)
        self.ln(1.5)

    def _lines(self, text: str, height: float) -> None:
        # fpdf2's multi_cell re-measures the growing line for every character, which
        # took 45 s for 2,000 contributions; wrapping by cached word widths is linear.
        for line in self._wrap(self.text_of(text), self.epw):
            self.cell(0, height, line, new_x="LMARGIN", new_y="NEXT")

    def _wrap(self, text: str, width: float) -> list[str]:
        space = self._width(" ")
        lines: list[str] = []
        current: list[str] = []
        used = 0.0
        for word in text.split():
            word_width = self._width(word)
            if current and used + space + word_width > width:
                lines.append(" ".join(current))
                current, used = [], 0.0
            if word_width > width:  # a very long word (a URL) is cut to fit
                lines.extend(self._split_long(word, width))
                continue
            used += (space if current else 0.0) + word_width
            current.append(word)
        if current:
            lines.append(" ".join(current))
        return lines

    def _split_long(self, word: str, width: float) -> list[str]:
        pieces, piece = [], ""
        for char in word:
            if piece and self._width(piece + char) > width:
                pieces.append(piece)
                piece = ""
            piece += char
        return [*pieces, piece] if piece else pieces

    def _width(self, text: str) -> float:
        key = (self.font_family, self.font_style, self.font_size_pt, text)
        width = self._widths.get(key)
        if width is None:
            width = self._widths[key] = self.get_string_width(text)
        return width


def write_pdf(
    manifest: EditionManifest,
    chapters: Sequence[RenderedChapter],
    *,
    font_path: Path | None,
    compress: bool = True,
) -> bytes:
    pdf = _EditionPdf(font_path)
    pdf.set_compression(compress)
    pdf.set_title(f"Handbuch, Ausgabe {manifest.number}")
    pdf.set_lang("de")
    pdf.add_page()
    pdf.heading(f"Handbuch, Ausgabe {manifest.number}", 22)
    pdf.paragraph(f"Eingefroren am {manifest.created.strftime('%d.%m.%Y')} · {manifest.url}")
    pdf.heading("Inhalt", 14)
    for number, chapter in enumerate(chapters, start=1):
        pdf.paragraph(f"{number}. {chapter.chapter.section.title_de}")
        for sub, section in enumerate(chapter.sections, start=1):
            pdf.paragraph(f"    {number}.{sub} {section.section.title_de}")
    for number, chapter in enumerate(chapters, start=1):
        pdf.add_page()
        _section(pdf, chapter.chapter, f"{number}.", 16)
        for sub, section in enumerate(chapter.sections, start=1):
            _section(pdf, section, f"{number}.{sub}", 13)
    return bytes(pdf.output())


def _section(pdf: _EditionPdf, section: RenderedSection, number: str, size: int) -> None:
    pdf.heading(f"{number} {section.section.title_de}", size)
    pdf.paragraph(html_to_text(str(section.editorial)))
    _reasons(pdf, section.reasons)
    for contribution in section.contributions:
        _contribution(pdf, contribution)


def _contribution(pdf: _EditionPdf, contribution: RenderedContribution) -> None:
    view = contribution.view
    pdf.heading(view.title if view and view.title else contribution.uri, 11)
    member = contribution.member
    origin = f"Von {member.name}" + (f" (Gemeindeschlüssel {member.ags})" if member.ags else "")
    pdf.paragraph(f"{origin} · Original: {view.url if view and view.url else contribution.uri}", 8)
    if view is not None:
        pdf.paragraph(view.summary)
    pdf.paragraph(html_to_text(str(contribution.content)))
    counts = contribution.counts
    pdf.paragraph(
        f"Zustimmung: {counts.agree} · Widerspruch: {counts.disagree} · Teilweise: {counts.partly}", 8
    )
    _reasons(pdf, contribution.reasons)


def _reasons(pdf: _EditionPdf, reasons: Sequence[ReasonLine]) -> None:
    for line in reasons:
        stance = line.stance
        pdf.paragraph(f"{position_label(stance.position)} – {line.member.name}: {stance.reason} "
                      f"({stance.link})", 8)
