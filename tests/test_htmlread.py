"""``htmlread.feed`` gives an ``HTMLParser`` the events ``html.parser`` gives it (the module
docstring says which markup it reads itself and which it hands to html.parser): here on
markup of both kinds, and on the pages of rendered reports in tests/test_report_render.py."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from flaqum.report import htmlread


class Recorder(HTMLParser):
    """Every event, with its arguments."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.seen = []

    def handle_starttag(self, tag, attrs):
        self.seen.append(("start", tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.seen.append(("startend", tag, attrs))

    def handle_endtag(self, tag):
        self.seen.append(("end", tag))

    def handle_data(self, data):
        self.seen.append(("data", data))

    def handle_comment(self, data):
        self.seen.append(("comment", data))

    def handle_decl(self, decl):
        self.seen.append(("decl", decl))

    def handle_pi(self, data):
        self.seen.append(("pi", data))

    def unknown_decl(self, data):
        self.seen.append(("unknown", data))


def same_events(markup: str) -> list:
    """The events both ways, asserted equal (html.parser's merged data are compared as one)."""
    slow, fast = Recorder(), Recorder()
    slow.feed(markup)
    slow.close()
    htmlread.feed(fast, markup)
    assert fast.seen == slow.seen, markup
    return fast.seen


SIMPLE = [
    "",
    "plain text &amp; more &lt;b&gt; &#8722;0.5 &nbsp;",
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>A &amp; B</title>'
    "<style>table td:nth-child(2) { color: #777 } a > b {}</style></head>"
    '<body><p class="x" hidden>Text<br>more<br/>and <span class="ident">H1</span></p>'
    '<svg viewBox=\'0 0 10 10\' aria-label="a &quot;b&quot; &lt;c&gt;"><path d="M0 0" />'
    '<text x="1" y="2" font-size="9">4.5</text></svg></body></html>',
    '<TABLE CLASS="Report-Table"><TR><TD COLSPAN="2" data-x="">A\n  b</TD></TR></TABLE>',
    '<td title="x > y">1</td >',
    "<script>if (a < b && c > d) {}</script>",
    "<p>unclosed &amp",
]
ODD = [
    "<!-- a comment --><p>x</p>",
    "<p class=unquoted>x</p>",
    "a < b and c",
    "<?php echo 1 ?><p>x</p>",
    "<p>x</p x>",
    "<p a==b>x</p>",
    '<p a"b="c">x</p>',
    "<style>a { content: '</p>' }</style>",
    "<![CDATA[x]]><p>y</p>",
    "<p x='1'y='2'>z</p>",
    "<a$b>x</a$b>",
    '<!DOCTYPE html PUBLIC "-//W3C//DTD">',
]


@pytest.mark.parametrize("markup", SIMPLE)
def test_simple_markup_is_read_without_html_parser(markup):
    assert htmlread.events(markup) is not None
    same_events(markup)


@pytest.mark.parametrize("markup", ODD)
def test_other_markup_goes_to_html_parser(markup):
    assert htmlread.events(markup) is None
    same_events(markup)


def test_the_events_are_html_parsers_on_a_whole_page():
    parts = []
    for i in range(300):
        parts.append(
            f'<tr class="r{i % 3}"><td><span class="ident">Team &amp; {i}</span></td>'
            f'<td class="num">{i / 7:.2f}</td><td title="&lt;{i}&gt;">&#8722;{i}</td></tr>'
        )
    page = f'<!DOCTYPE html><table class="report-table">{"".join(parts)}</table>'
    seen = same_events(page)
    assert len(seen) > 3000 and htmlread.events(page) is not None
