"""Edition renderings: sections and attribution in accessible HTML, hostile text escaped, PDF."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hub_support import actor, practice

from node.hub.contribution import document_hash, stance_reason_of
from node.hub.editions import EditionManifest, IncludedContribution, ManifestSection
from node.hub.render import (
    EditionRenderer,
    MemberInfo,
    RenderContext,
    StanceCounts,
    find_unicode_font,
    render_pdf,
)
from node.hub.structure import Section

GUETERSLOH, EVIL = "guetersloh.example", "evil.example"
HOSTILE = '<script>alert("x")</script>'


def included(document) -> IncludedContribution:
    return IncludedContribution(document["id"], document_hash(document), document)


def manifest() -> EditionManifest:
    good = practice(GUETERSLOH, "e-akte", name="E-Akte im Bauamt", summary="Kurz gesagt",
                    content="<p>Wir <strong>scannen</strong>.</p><h1>Überschrift</h1>")
    hostile = practice(EVIL, "x", name=f"Titel {HOSTILE}", summary=HOSTILE,
                       content=f'<p onclick="steal()">Text</p>{HOSTILE}<a href="javascript:steal()">Link</a>')
    hostile["url"] = "javascript:steal()"
    sections = (
        ManifestSection(Section("e-akte", "E-Akte", "E-file", 10, text="Einleitung *kursiv* <script>x</script> [klick](javascript:alert(1))"), (included(good),)),
        ManifestSection(Section("e-akte-scan", f"Scannen {HOSTILE}", "Scanning", 10, parent="e-akte"), (included(hostile), included(good))),
        ManifestSection(Section("portal", "Bürgerportal", "Citizen portal", 20), ()),
    )
    return EditionManifest(3, "https://hub.example/handbook/editions/3", "https://hub.example/actor",
                           datetime(2026, 12, 1, 9, tzinfo=UTC), None, sections)


CONTEXT = RenderContext(
    members={actor(GUETERSLOH): MemberInfo(actor(GUETERSLOH), "Stadt Gütersloh", "05754008")},
    stances={f"https://{GUETERSLOH}/practices/e-akte": StanceCounts(agree=4, disagree=1, partly=2)},
    manifest_hash="ab" * 32,
)


def headings(html: str) -> list[int]:
    return [int(level) for level in re.findall(r"<h([1-6])[\s>]", html)]


def test_single_page_has_sections_attribution_and_counts():
    html = EditionRenderer().single_page(manifest(), CONTEXT)
    assert '<html lang="de">' in html
    for title in ("Handbuch, Ausgabe 3", "E-Akte", "Scannen", "Bürgerportal", "E-Akte im Bauamt"):
        assert title in html
    assert "Stadt Gütersloh" in html and "05754008" in html
    assert "Zustimmung: 4" in html and "Widerspruch: 1" in html and "Teilweise: 2" in html
    assert 'href="https://guetersloh.example/practices/e-akte"' in html
    assert "<em>kursiv</em>" in html
    assert "ab" * 32 in html
    # unknown members are named by their host
    assert "evil.example" in html


def test_headings_never_skip_a_level():
    html = EditionRenderer().single_page(manifest(), CONTEXT)
    levels = headings(html)
    assert levels[0] == 1
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False)), levels
    assert "<h1>Überschrift" not in html  # member headings are dropped, their text kept
    assert "Überschrift" in html


def test_hostile_text_is_never_rendered_unescaped():
    renderer = EditionRenderer()
    pages = renderer.pages(manifest(), CONTEXT)
    for page, html in pages.items():
        assert "<script" not in html, page
        assert "onclick" not in html, page
        assert not re.search(r"""(href|src)\s*=\s*["']?\s*javascript:""", html, re.I), page
    everything = pages["all.html"]
    assert "&lt;script&gt;" in everything  # shown as text, in titles and summaries
    assert "Text" in everything and "Link" in everything
    assert "[klick](javascript:alert(1))" in everything  # refused as a link, kept as text


def test_pages_cover_every_chapter_with_a_table_of_contents():
    pages = EditionRenderer().pages(manifest(), CONTEXT)
    assert set(pages) == {"index.html", "all.html", "kapitel/e-akte.html", "kapitel/portal.html"}
    index = pages["index.html"]
    assert 'href="kapitel/e-akte.html#e-akte-scan"' in index
    chapter = pages["kapitel/e-akte.html"]
    assert "E-Akte im Bauamt" in chapter and 'href="../all.html"' in chapter
    assert "E-Akte im Bauamt" not in pages["kapitel/portal.html"]


def test_english_rendering():
    html = EditionRenderer().single_page(manifest(), RenderContext(language="en"))
    assert '<html lang="en">' in html and "Handbook, edition 3" in html and "Citizen portal" in html


@pytest.mark.parametrize("font", [None, "system"])
def test_pdf_is_written(font):
    font_path = find_unicode_font() if font == "system" else None
    if font == "system" and font_path is None:
        pytest.skip("no DejaVu Sans on this machine; the Latin-1 case is covered")
    data = render_pdf(manifest(), CONTEXT, font_path=font_path)
    assert data.startswith(b"%PDF-")
    assert len(data) > 1500


def test_pdf_text_shows_sections_and_attribution():
    data = render_pdf(manifest(), CONTEXT, font_path=None, compress=False).decode("latin-1")
    for text in ("Handbuch, Ausgabe 3", "1. E-Akte", "1.1 Scannen", "E-Akte im Bauamt",
                 "Stadt G\xfctersloh", "Zustimmung: 4", "2. B\xfcrgerportal"):
        assert text in data, text


def _reasons_context() -> RenderContext:
    practice_uri = f"https://{GUETERSLOH}/practices/e-akte"
    objection = stance_reason_of(f"https://{EVIL}/stances/1", actor(EVIL), {
        "position": "disagree", "reason": f"Zu teuer {HOSTILE}", "url": "javascript:steal()"})
    support = stance_reason_of(f"https://{GUETERSLOH}/stances/2", actor(GUETERSLOH), {
        "position": "agree", "reason": "Bewährt", "url": f"https://{GUETERSLOH}/s/2"})
    about_section = stance_reason_of(f"https://{GUETERSLOH}/stances/3", actor(GUETERSLOH), {
        "position": "partly", "reason": "Kapitel zu knapp"})
    return RenderContext(members=CONTEXT.members, stances=CONTEXT.stances,
                         reasons={practice_uri: (objection, support)},
                         section_reasons={"portal": (about_section,)})


def test_reasons_are_shown_escaped_named_and_linked():
    pages = EditionRenderer().pages(manifest(), _reasons_context())
    everything = pages["all.html"]
    assert f"evil.example</a>: Zu teuer {HOSTILE.replace('<', '&lt;').replace('>', '&gt;')}" in (
        everything.replace("&#34;", '"'))
    # a javascript: url is no link: the stance's id is linked instead
    assert '<a href="https://evil.example/stances/1">Widerspruch</a>' in everything
    assert '<a href="https://guetersloh.example/s/2">Zustimmung</a>' in everything
    assert "Stadt Gütersloh</a>: Bewährt" in everything
    assert '<a href="https://guetersloh.example/stances/3">Teilweise</a>' in everything
    assert "Kapitel zu knapp" in pages["kapitel/portal.html"]
    assert "Kapitel zu knapp" not in pages["kapitel/e-akte.html"]
    for html in pages.values():
        assert "<script" not in html
    english = EditionRenderer().single_page(manifest(), replace(_reasons_context(), language="en"))
    assert ">Disagree</a>" in english and ">Partly</a>" in english


def test_pdf_text_shows_the_reasons():
    data = render_pdf(manifest(), _reasons_context(), font_path=None, compress=False)
    text = data.decode("latin-1")
    assert "Widerspruch - evil.example: Zu teuer" in text
    assert "Teilweise - Stadt G\xfctersloh: Kapitel zu knapp" in text


def test_a_stance_without_reason_or_known_position_has_no_reason_line():
    assert stance_reason_of("https://a.example/s/1", "a", {"position": "agree"}) is None
    assert stance_reason_of("https://a.example/s/1", "a", {"position": "agree", "reason": " "}) is None
    assert stance_reason_of("https://a.example/s/1", "a", {"position": "maybe", "reason": "x"}) is None
    reason = stance_reason_of("https://a.example/s/1", "a", {"position": "partly", "reason": " x ",
                                                              "url": {"href": 5}})
    assert reason is not None and (reason.reason, reason.link) == ("x", "https://a.example/s/1")
