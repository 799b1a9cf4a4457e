"""HTML -> the page's own text: its main content where the page marks it, without the site's navigation and chrome.

Documentation sites repeat their table of contents, sidebars, breadcrumbs and footers on every page; embedded with
each page they cost tokens and blur the chunk that carries the page's subject. The text keeps the page's inline
structure: a link's words stay in their sentence, and only block elements (paragraphs, headings, list items, rows)
start a new line.
"""

from __future__ import annotations

import re
from typing import Any

#: where pages mark their main content, in order of trust: the page's own marks (HTML5, ARIA, a lone article), then
#: the documentation generators' body containers (Sphinx, Read the Docs, MkDocs Material, Docusaurus, pdoc/rustdoc,
#: blog themes); an empty one (a <main> a script fills) is passed over
MAIN_SELECTORS = (
    "main",
    "[role=main]",
    "article",
    "div[itemprop=articleBody]",
    "div.body",
    "div.md-content",
    "div.theme-doc-markdown",
    "#main-content",
)
#: generic names any box may carry: trusted only when the box holds MIN_SHARE of the page's text (a "Share this"
#: box that calls itself .content is not the page)
GENERIC_SELECTORS = ("#content", "div.content")
MIN_SHARE = 0.25
#: never text
INVISIBLE = ("script", "style", "noscript", "template", "svg")
#: never part of the page's own text, wherever they are (unless the page has no other text)
CHROME = (
    *INVISIBLE,
    "nav",
    "aside",
    "[role=navigation]",
    "[role=search]",
    "[role=complementary]",
    "a.headerlink",  # Sphinx's pilcrow after every heading
    "div.sphinxsidebar",
    "div.related",
)
#: page-level chrome, dropped when no main content is marked (inside an article, a header holds its title)
PAGE_CHROME = ("header", "footer", "[role=banner]", "[role=contentinfo]", "div.footer", "#footer")

BLOCKS = frozenset(
    (
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "br",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    )
)
HEADINGS = {f"h{n}": n for n in range(1, 7)}
#: blocks followed by a blank line
PARAGRAPHS = frozenset(("p", "pre", "table", "ul", "ol", "dl", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"))
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")


def read_html(markup: str, name: str) -> tuple[str, str]:
    """(text, title) of an HTML page: its main content's text, and its first heading or <title>."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(markup)
    title_node = tree.css_first("title")
    page_title = title_node.text(strip=True) if title_node else ""
    _drop(tree, CHROME)
    root = _main(tree)
    if root is None:
        _drop(tree, PAGE_CHROME)
        root = tree.body or tree.root
    text = text_of(root) if root is not None else ""
    if not text.strip():  # a page whose only text is in its header or navigation: that is its text, then
        tree = LexborHTMLParser(markup)
        _drop(tree, INVISIBLE)
        root = tree.body or tree.root
        text = text_of(root) if root is not None else ""
    heading = root.css_first("h1") if root is not None else None
    title = (heading.text(strip=True) if heading else "") or page_title
    return text, title or name


def _drop(tree: Any, selectors: tuple[str, ...]) -> None:
    for selector in selectors:
        for node in tree.css(selector):
            node.decompose()


def _main(tree: Any) -> Any:
    """The element holding the page's main content: the first of MAIN_SELECTORS with text, else the first generic
    box holding MIN_SHARE of the page's text; None where there is none. Several articles (a listing) are not one
    main content. A short page keeps its marked content even when its footer says more."""
    for selector in MAIN_SELECTORS:
        nodes = tree.css(selector)
        if nodes and (selector != "article" or len(nodes) == 1) and nodes[0].text(strip=True):
            return nodes[0]
    page = tree.body or tree.root
    total = len(page.text(strip=True)) if page is not None else 0
    for selector in GENERIC_SELECTORS:
        node = tree.css_first(selector)
        if node is not None and len(node.text(strip=True)) >= max(1, MIN_SHARE * total):
            return node
    return None


def text_of(root: Any) -> str:
    """The visible text under an element: inline runs joined as written, blocks on lines of their own, a blank line
    between paragraphs; whitespace collapsed except inside <pre>."""
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    pre = 0
    while stack:
        node, leaving = stack.pop()
        tag = node.tag
        if leaving:
            if tag == "pre":
                pre -= 1
            if tag in PARAGRAPHS:
                out.append("\n\n")
            elif tag in BLOCKS and out and not out[-1].endswith("\n"):
                out.append("\n")
            continue
        if tag == "-text":
            text = node.text_content or ""
            out.append(text if pre else _SPACES.sub(" ", text))
            continue
        if tag == "-comment" or (not node.is_element_node and tag != "html"):
            continue
        if tag in BLOCKS and out and not out[-1].endswith("\n"):
            out.append("\n")
        if tag in HEADINGS:  # marked as Markdown marks them: sections.py reads the page's outline from them
            out.append("#" * HEADINGS[tag] + " ")
        if tag == "pre":
            pre += 1
        stack.append((node, True))
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, False) for c in reversed(children))
    # collapsed text starts a line with at most one space; a <pre> line keeps its indentation
    lines = [
        line.rstrip().removeprefix(" ") if not line.startswith("  ") else line.rstrip()
        for line in "".join(out).split("\n")
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
