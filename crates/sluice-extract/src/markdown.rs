//! Markdown through pulldown-cmark: headings, paragraphs, list items, code, quotes and tables
//! become blocks; markup and raw HTML are dropped.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use sluice_core::{Block, BlockKind, ExtractedDocument};

pub(crate) fn extract(source: &str) -> ExtractedDocument {
    let mut builder = BlockBuilder::default();
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES;
    for event in Parser::new_ext(source, options) {
        builder.event(event);
    }
    builder.flush();
    let title = builder
        .blocks
        .iter()
        .find(|block| block.kind == BlockKind::Heading { level: 1 })
        .map(|block| block.text.clone());
    ExtractedDocument { format: "markdown".into(), title, blocks: builder.blocks, ..Default::default() }
}

#[derive(Default)]
struct BlockBuilder {
    blocks: Vec<Block>,
    current: String,
    /// Block-level containers that are open, innermost last.
    open: Vec<BlockKind>,
    /// Inside a table cell after the first one of its row.
    cell_index: usize,
}

impl BlockBuilder {
    fn kind(&self) -> BlockKind {
        // The innermost container that gives its kind to the text: a paragraph inside a list
        // item is a list item, inside a quote it is a quote.
        self.open
            .iter()
            .rev()
            .find(|kind| !matches!(kind, BlockKind::Paragraph))
            .copied()
            .unwrap_or(BlockKind::Paragraph)
    }

    fn flush(&mut self) {
        let text = self.current.trim();
        if !text.is_empty() {
            self.blocks.push(Block { kind: self.kind(), text: text.to_owned(), page: None });
        }
        self.current.clear();
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Code(text) | Event::InlineMath(text) | Event::DisplayMath(text) => {
                self.current.push_str(&text)
            }
            Event::SoftBreak => self.current.push(' '),
            Event::HardBreak => self.current.push('\n'),
            Event::Html(_)
            | Event::InlineHtml(_)
            | Event::FootnoteReference(_)
            | Event::Rule
            | Event::TaskListMarker(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        let kind = match tag {
            Tag::Heading { level, .. } => BlockKind::Heading { level: level as u8 },
            Tag::Paragraph => BlockKind::Paragraph,
            Tag::Item => BlockKind::ListItem,
            Tag::CodeBlock(_) => BlockKind::Code,
            Tag::BlockQuote(_) => BlockKind::Quote,
            Tag::Table(_) => BlockKind::Table,
            Tag::TableHead | Tag::TableRow => {
                self.cell_index = 0;
                return;
            }
            Tag::TableCell => {
                if self.cell_index > 0 {
                    self.current.push_str(" | ");
                }
                self.cell_index += 1;
                return;
            }
            _ => return,
        };
        // Text before a nested block (a tight list item followed by a sub-list) is its own block.
        self.flush();
        self.open.push(kind);
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_)
            | TagEnd::Paragraph
            | TagEnd::Item
            | TagEnd::CodeBlock
            | TagEnd::BlockQuote(_)
            | TagEnd::Table => {
                self.flush();
                self.open.pop();
            }
            TagEnd::TableHead | TagEnd::TableRow => self.flush(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_structure_and_drops_markup() {
        let doc = extract(
            "# Guide\n\nSome *emphasis* and `code`.\n\n## Steps\n\n- first\n- second\n  - nested\n\n> quoted\n\n```\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert_eq!(doc.title.as_deref(), Some("Guide"));
        let blocks: Vec<(BlockKind, &str)> = doc.blocks.iter().map(|b| (b.kind, b.text.as_str())).collect();
        assert_eq!(
            blocks,
            [
                (BlockKind::Heading { level: 1 }, "Guide"),
                (BlockKind::Paragraph, "Some emphasis and code."),
                (BlockKind::Heading { level: 2 }, "Steps"),
                (BlockKind::ListItem, "first"),
                (BlockKind::ListItem, "second"),
                (BlockKind::ListItem, "nested"),
                (BlockKind::Quote, "quoted"),
                (BlockKind::Code, "fn main() {}"),
                (BlockKind::Table, "a | b"),
                (BlockKind::Table, "1 | 2"),
            ]
        );
    }
}
