//! HTML through html5ever (scraper): the title, and the text of the page's content with
//! scripts, styles, navigation, headers, footers, hidden elements and link lists dropped. When
//! one element is marked as the main content and holds enough of the text, only it is read.

use ego_tree::iter::Edge;
use scraper::{ElementRef, Html, Node, Selector};
use sluice_core::{Block, BlockKind, ExtractedDocument};

use crate::ExtractError;

/// Elements whose whole subtree is never content.
const SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe", "button",
    "select", "textarea", "head", "object", "embed", "canvas", "menu",
];

/// ARIA roles of page chrome.
const SKIPPED_ROLES: &[&str] = &["navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"];

/// class/id words that mark page chrome on sites that do not use semantic elements.
const CHROME_WORDS: &[&str] = &[
    "nav",
    "navbar",
    "navigation",
    "menu",
    "sidebar",
    "footer",
    "breadcrumb",
    "breadcrumbs",
    "cookie",
    "cookies",
    "share",
    "social",
    "skip-link",
    "skiplink",
];

pub(crate) fn extract(source: &str) -> Result<ExtractedDocument, ExtractError> {
    let page = Html::parse_document(source);
    let title = Selector::parse("title")
        .ok()
        .and_then(|selector| {
            page.select(&selector).next().map(|title| collapse_whitespace(&title.text().collect::<String>()))
        })
        .filter(|title| !title.is_empty());
    let body = Selector::parse("body").ok().and_then(|selector| page.select(&selector).next());
    let body = body.unwrap_or_else(|| page.root_element());
    let root = main_content(body).unwrap_or(body);
    let mut walker = Walker::default();
    walker.walk(root);
    let metadata = meta_fields(&page);
    Ok(ExtractedDocument { format: "html".into(), title, blocks: walker.blocks, metadata, ..Default::default() })
}

/// `<meta>` names (and Open Graph properties) that say who wrote a page and when, as
/// metadata pairs (see `metadata.rs` for the names).
const META_FIELDS: &[(&str, &str)] = &[
    ("author", "author"),
    ("dc.creator", "author"),
    ("article:author", "author"),
    ("dc.subject", "subject"),
    ("date", "created"),
    ("dc.date", "created"),
    ("dcterms.created", "created"),
    ("dc.date.created", "created"),
    ("article:published_time", "created"),
    ("dcterms.modified", "modified"),
    ("last-modified", "modified"),
    ("article:modified_time", "modified"),
];
/// Characters kept of one `<meta>` value.
const MAX_META_CHARS: usize = 1_000;

fn meta_fields(page: &Html) -> Vec<(String, String)> {
    let Ok(selector) = Selector::parse("meta[content]") else { return Vec::new() };
    let mut fields = Vec::new();
    for meta in page.select(&selector) {
        let element = meta.value();
        let Some(key) = element.attr("name").or_else(|| element.attr("property")) else { continue };
        let key = key.trim().to_ascii_lowercase();
        let Some((_, name)) = META_FIELDS.iter().find(|(meta_name, _)| *meta_name == key) else { continue };
        let value: String =
            collapse_whitespace(element.attr("content").unwrap_or_default()).chars().take(MAX_META_CHARS).collect();
        if !value.is_empty() {
            fields.push(((*name).to_owned(), value));
        }
    }
    fields
}

/// Elements that mark a page's main content, most specific first.
const MAIN_CONTENT: &[&str] = &["[itemprop~=articleBody]", "article", "[role=main]", "main"];
/// Share of the body's text the main-content element must hold to be trusted: a marked element
/// with less is a teaser or a widget, and the whole body is safer.
const MAIN_CONTENT_MIN_SHARE: f64 = 0.3;
/// A block whose text is mostly link text is navigation (menus, "related" lists, tag clouds).
const MAX_LINK_DENSITY: f64 = 0.6;

/// The one element marked as the page's main content, when it holds enough of the text.
fn main_content(body: ElementRef<'_>) -> Option<ElementRef<'_>> {
    let body_chars = visible_chars(body);
    for css in MAIN_CONTENT {
        let Ok(selector) = Selector::parse(css) else { continue };
        let mut found = body.select(&selector);
        let (Some(candidate), None) = (found.next(), found.next()) else { continue };
        if body_chars > 0 && visible_chars(candidate) as f64 >= MAIN_CONTENT_MIN_SHARE * body_chars as f64 {
            return Some(candidate);
        }
    }
    None
}

/// Characters of text outside scripts, styles and other never-content elements.
fn visible_chars(root: ElementRef<'_>) -> usize {
    let mut chars = 0;
    let mut skipping: Option<ego_tree::NodeId> = None;
    for edge in root.traverse() {
        match edge {
            Edge::Open(node) if skipping.is_none() => match node.value() {
                Node::Text(text) => chars += text.trim().len(),
                Node::Element(element) if SKIPPED.contains(&element.name()) => skipping = Some(node.id()),
                _ => {}
            },
            Edge::Close(node) if skipping == Some(node.id()) => skipping = None,
            _ => {}
        }
    }
    chars
}

#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    current: String,
    open: Vec<BlockKind>,
    preformatted: usize,
    /// Open `<a>` elements, and how many bytes of `current` were written inside one.
    in_link: usize,
    link_bytes: usize,
}

impl Walker {
    fn walk(&mut self, root: ElementRef<'_>) {
        let mut skipping: Option<ego_tree::NodeId> = None;
        for edge in root.traverse() {
            match edge {
                Edge::Open(node) => {
                    if skipping.is_some() {
                        continue;
                    }
                    match node.value() {
                        Node::Text(text) => self.text(text),
                        Node::Element(element) => {
                            if is_chrome(element) {
                                skipping = Some(node.id());
                            } else {
                                self.open_element(element.name());
                                self.in_link += usize::from(element.name() == "a");
                            }
                        }
                        _ => {}
                    }
                }
                Edge::Close(node) => {
                    if skipping == Some(node.id()) {
                        skipping = None;
                        continue;
                    }
                    if skipping.is_none()
                        && let Node::Element(element) = node.value()
                    {
                        self.in_link -= usize::from(element.name() == "a" && self.in_link > 0);
                        self.close_element(element.name());
                    }
                }
            }
        }
        self.flush();
    }

    fn text(&mut self, text: &str) {
        let before = self.current.len();
        self.append_text(text);
        if self.in_link > 0 {
            self.link_bytes += self.current.len() - before;
        }
    }

    fn append_text(&mut self, text: &str) {
        if self.preformatted > 0 {
            self.current.push_str(text);
            return;
        }
        let collapsed = collapse_whitespace(text);
        if collapsed.is_empty() {
            if !text.is_empty() && !self.current.ends_with(' ') && !self.current.is_empty() {
                self.current.push(' ');
            }
            return;
        }
        if text.starts_with(char::is_whitespace) && !self.current.is_empty() && !self.current.ends_with(' ') {
            self.current.push(' ');
        }
        self.current.push_str(&collapsed);
        if text.ends_with(char::is_whitespace) {
            self.current.push(' ');
        }
    }

    fn open_element(&mut self, name: &str) {
        match name {
            "br" => self.current.push('\n'),
            "td" | "th" => {
                if !self.current.trim().is_empty() {
                    self.current.push_str(" | ");
                }
            }
            _ => {
                if let Some(kind) = block_kind(name) {
                    self.flush();
                    self.open.push(kind);
                    if name == "pre" {
                        self.preformatted += 1;
                    }
                }
            }
        }
    }

    fn close_element(&mut self, name: &str) {
        if block_kind(name).is_some() {
            self.flush();
            self.open.pop();
            if name == "pre" {
                self.preformatted = self.preformatted.saturating_sub(1);
            }
        }
    }

    fn flush(&mut self) {
        let text = self.current.trim();
        let links = self.link_bytes as f64 / self.current.len().max(1) as f64;
        if !text.is_empty() && links <= MAX_LINK_DENSITY {
            let kind = self.open.last().copied().unwrap_or(BlockKind::Paragraph);
            self.blocks.push(Block { kind, text: text.to_owned(), page: None });
        }
        self.current.clear();
        self.link_bytes = 0;
    }
}

/// The kind of block an element starts, `None` for inline elements.
fn block_kind(name: &str) -> Option<BlockKind> {
    let kind = match name {
        "h1" => BlockKind::Heading { level: 1 },
        "h2" => BlockKind::Heading { level: 2 },
        "h3" => BlockKind::Heading { level: 3 },
        "h4" => BlockKind::Heading { level: 4 },
        "h5" => BlockKind::Heading { level: 5 },
        "h6" => BlockKind::Heading { level: 6 },
        "li" | "dt" | "dd" => BlockKind::ListItem,
        "pre" => BlockKind::Code,
        "blockquote" => BlockKind::Quote,
        "tr" | "caption" => BlockKind::Table,
        "p" | "div" | "section" | "article" | "main" | "ul" | "ol" | "dl" | "table" | "thead" | "tbody" | "tfoot"
        | "figure" | "figcaption" | "address" | "details" | "summary" | "hr" | "body" | "html" | "center"
        | "fieldset" | "legend" => BlockKind::Paragraph,
        _ => return None,
    };
    Some(kind)
}

fn is_chrome(element: &scraper::node::Element) -> bool {
    if SKIPPED.contains(&element.name()) {
        return true;
    }
    if element.attr("hidden").is_some() || element.attr("aria-hidden") == Some("true") || hidden_by_style(element) {
        return true;
    }
    if element.attr("role").is_some_and(|role| SKIPPED_ROLES.contains(&role.trim())) {
        return true;
    }
    let marked = |value: Option<&str>| {
        value.is_some_and(|value| {
            value
                .split(|c: char| c.is_whitespace() || c == '_')
                .any(|word| CHROME_WORDS.contains(&word.to_ascii_lowercase().as_str()))
        })
    };
    marked(element.attr("class")) || marked(element.attr("id"))
}

/// An inline style that hides the element (`display: none`, `visibility: hidden`).
fn hidden_by_style(element: &scraper::node::Element) -> bool {
    element.attr("style").is_some_and(|style| {
        let style: String = style.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        style.split(';').any(|declaration| declaration == "display:none" || declaration == "visibility:hidden")
    })
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_wrote_a_page_and_when() {
        let doc = extract(
            r#"<html><head><title>Notes</title><meta name="Author" content=" Ana  Díaz ">
               <meta property="article:published_time" content="2024-05-01T09:30:00+02:00">
               <meta name="description" content="not kept"></head><body><p>Text.</p></body></html>"#,
        )
        .unwrap();
        assert_eq!(
            doc.metadata,
            [
                ("author".to_owned(), "Ana Díaz".to_owned()),
                ("created".to_owned(), "2024-05-01T09:30:00+02:00".to_owned())
            ]
        );
    }

    #[test]
    fn keeps_title_and_content_drops_chrome() {
        let doc = extract(
            r#"<html><head><title> The  Page </title><style>p{}</style></head>
            <body><nav><a href="/">Home</a></nav><header>Site header</header>
            <div class="sidebar">Links</div>
            <main><h1>Heading</h1><p>First <b>bold</b> paragraph.</p>
            <ul><li>one</li><li>two</li></ul>
            <table><tr><td>a</td><td>b</td></tr></table>
            <script>var x = 1;</script></main>
            <footer>Copyright</footer></body></html>"#,
        )
        .unwrap();
        assert_eq!(doc.title.as_deref(), Some("The Page"));
        assert!(doc.metadata.is_empty(), "{:?}", doc.metadata);
        let blocks: Vec<(BlockKind, &str)> = doc.blocks.iter().map(|b| (b.kind, b.text.as_str())).collect();
        assert_eq!(
            blocks,
            [
                (BlockKind::Heading { level: 1 }, "Heading"),
                (BlockKind::Paragraph, "First bold paragraph."),
                (BlockKind::ListItem, "one"),
                (BlockKind::ListItem, "two"),
                (BlockKind::Table, "a | b"),
            ]
        );
    }

    #[test]
    fn the_marked_main_content_wins_when_it_holds_the_text() {
        let article = "<p>The council approved the harbour budget after a long debate about dredging.</p>".repeat(5);
        let page = format!(
            r#"<body><div class="top">Latest news headlines you may also like to read today</div>
            <article>{article}</article><div class="more">Other stories from around the region today</div></body>"#
        );
        let doc = extract(&page).unwrap();
        assert_eq!(doc.blocks.len(), 5, "{:?}", doc.blocks);
        // A small <article> (a teaser) does not hide the page.
        let doc = extract(&format!("<body>{article}<article><p>Teaser</p></article></body>")).unwrap();
        assert_eq!(doc.blocks.len(), 6);
    }

    #[test]
    fn link_lists_and_hidden_elements_are_dropped() {
        let doc = extract(
            r#"<body><p>Real text with <a href="/x">one link</a> in a long sentence.</p>
            <ul><li><a href="/a">Related story one</a></li><li><a href="/b">Related story two</a></li></ul>
            <p style="display: none">Hidden</p><p style="Visibility : Hidden;">Also hidden</p></body>"#,
        )
        .unwrap();
        let texts: Vec<&str> = doc.blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["Real text with one link in a long sentence."]);
    }
}
