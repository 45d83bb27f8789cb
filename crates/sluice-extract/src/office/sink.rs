//! Turns the paragraphs and tables an office walker meets into blocks.
//!
//! Paragraphs nest (a text box inside a paragraph) and tables nest (a table in a cell); a
//! table's rows become one block each, cells joined by ` | `, and a nested table's rows are
//! folded into the cell that holds them.

use sluice_core::{Block, BlockKind};

pub(crate) const CELL_SEPARATOR: &str = " | ";

#[derive(Default)]
pub(crate) struct BlockSink {
    pub(crate) blocks: Vec<Block>,
    page: Option<u32>,
    /// Every block of the part has this kind (headers, footers, notes).
    part_kind: Option<BlockKind>,
    paragraphs: Vec<(BlockKind, String)>,
    tables: Vec<Table>,
}

#[derive(Default)]
struct Table {
    cells: Vec<String>,
    cell: Option<String>,
}

impl BlockSink {
    pub(crate) fn new(part_kind: Option<BlockKind>) -> Self {
        Self { part_kind, ..Self::default() }
    }

    pub(crate) fn set_page(&mut self, page: Option<u32>) {
        self.page = page;
    }

    pub(crate) fn set_part_kind(&mut self, kind: Option<BlockKind>) {
        self.part_kind = kind;
    }

    pub(crate) fn start_paragraph(&mut self, kind: BlockKind) {
        self.paragraphs.push((kind, String::new()));
    }

    /// Changes the kind of the paragraph being read (its style comes after its start).
    pub(crate) fn set_kind(&mut self, kind: BlockKind) {
        if let Some((current, _)) = self.paragraphs.last_mut() {
            *current = kind;
        }
    }

    pub(crate) fn in_paragraph(&self) -> bool {
        !self.paragraphs.is_empty()
    }

    /// Text of the innermost open paragraph; text outside any paragraph is layout whitespace.
    pub(crate) fn text(&mut self, text: &str) {
        if let Some((_, current)) = self.paragraphs.last_mut() {
            current.push_str(text);
        }
    }

    pub(crate) fn end_paragraph(&mut self) {
        let Some((kind, text)) = self.paragraphs.pop() else { return };
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if let Some(cell) = self.tables.last_mut().and_then(|table| table.cell.as_mut()) {
            if !cell.is_empty() {
                cell.push(' ');
            }
            cell.push_str(text);
        } else {
            self.push(kind, text.to_owned());
        }
    }

    pub(crate) fn start_table(&mut self) {
        self.tables.push(Table::default());
    }

    pub(crate) fn end_table(&mut self) {
        self.tables.pop();
    }

    pub(crate) fn start_cell(&mut self) {
        if let Some(table) = self.tables.last_mut() {
            table.cell = Some(String::new());
        }
    }

    pub(crate) fn end_cell(&mut self) {
        if let Some(table) = self.tables.last_mut()
            && let Some(cell) = table.cell.take()
        {
            table.cells.push(cell);
        }
    }

    pub(crate) fn end_row(&mut self) {
        let Some(table) = self.tables.last_mut() else { return };
        let mut cells = std::mem::take(&mut table.cells);
        while cells.last().is_some_and(|cell| cell.trim().is_empty()) {
            cells.pop();
        }
        if cells.is_empty() {
            return;
        }
        let row = cells.join(CELL_SEPARATOR);
        let depth = self.tables.len();
        match self.tables.get_mut(depth.wrapping_sub(2)).and_then(|outer| outer.cell.as_mut()) {
            Some(outer_cell) => {
                if !outer_cell.is_empty() {
                    outer_cell.push_str("; ");
                }
                outer_cell.push_str(&row);
            }
            None => self.push(BlockKind::Table, row),
        }
    }

    /// Handles the end of an element WordprocessingML and DrawingML share: paragraph `p`, text
    /// run `t` (clears `in_text`), and table parts `tc`, `tr`, `tbl`.
    pub(crate) fn close_ooxml(&mut self, name: &str, in_text: &mut bool) {
        match name {
            "p" => self.end_paragraph(),
            "t" => *in_text = false,
            "tc" => self.end_cell(),
            "tr" => self.end_row(),
            "tbl" => self.end_table(),
            _ => {}
        }
    }

    /// Adds a finished block (for formats whose structure is not paragraphs, e.g. sheets).
    pub(crate) fn push(&mut self, kind: BlockKind, text: String) {
        let kind = self.part_kind.unwrap_or(kind);
        self.blocks.push(Block { kind, text, page: self.page });
    }

    pub(crate) fn finish(mut self) -> Vec<Block> {
        while self.in_paragraph() {
            self.end_paragraph();
        }
        self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_out_row_by_row_with_nested_tables_folded() {
        let mut sink = BlockSink::default();
        sink.start_table();
        for row in [["a", "b"], ["c", "d"]] {
            for cell in row {
                sink.start_cell();
                sink.start_paragraph(BlockKind::Paragraph);
                sink.text(cell);
                sink.end_paragraph();
                if cell == "d" {
                    sink.start_table();
                    sink.start_cell();
                    sink.start_paragraph(BlockKind::Paragraph);
                    sink.text("inner");
                    sink.end_paragraph();
                    sink.end_cell();
                    sink.end_row();
                    sink.end_table();
                }
                sink.end_cell();
            }
            sink.end_row();
        }
        sink.end_table();
        let rows: Vec<String> = sink.finish().into_iter().map(|b| b.text).collect();
        assert_eq!(rows, ["a | b", "c | d; inner"]);
    }
}
