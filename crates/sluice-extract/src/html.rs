//! HTML through html5ever (scraper): the title, and the text of the page's content with
//! scripts, styles, navigation, headers, footers and other chrome dropped.

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
    let root = body.unwrap_or_else(|| page.root_element());
    let mut walker = Walker::default();
    walker.walk(root);
    Ok(ExtractedDocument { format: "html".into(), title, blocks: walker.blocks, ..Default::default() })
}

#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    current: String,
    open: Vec<BlockKind>,
    preformatted: usize,
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
                        self.close_element(element.name());
                    }
                }
            }
        }
        self.flush();
    }

    fn text(&mut self, text: &str) {
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
        if !text.is_empty() {
            let kind = self.open.last().copied().unwrap_or(BlockKind::Paragraph);
            self.blocks.push(Block { kind, text: text.to_owned(), page: None });
        }
        self.current.clear();
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
    if element.attr("hidden").is_some() || element.attr("aria-hidden") == Some("true") {
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

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
