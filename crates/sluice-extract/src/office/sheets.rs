//! Workbooks (XLSX, XLSB, XLS, ODS) through calamine: per sheet, its name as a heading and its
//! rows as table rows, the sheet's position as page.

use std::io::Cursor;

use calamine::{Data, Ods, Reader, Xls, Xlsb, Xlsx, open_workbook_from_rs};
use sluice_core::{BlockKind, ExtractedDocument};

use super::sink::{BlockSink, CELL_SEPARATOR};
use crate::{ExtractError, Limits};

/// The workbook formats calamine reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workbook {
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

impl Workbook {
    pub fn name(self) -> &'static str {
        match self {
            Workbook::Xlsx => "xlsx",
            Workbook::Xlsb => "xlsb",
            Workbook::Xls => "xls",
            Workbook::Ods => "ods",
        }
    }
}

pub(crate) fn extract(bytes: &[u8], kind: Workbook, limits: &Limits) -> Result<ExtractedDocument, ExtractError> {
    let reader = Cursor::new(bytes);
    let sheets = match kind {
        Workbook::Xlsx => read_all(open_workbook_from_rs::<Xlsx<_>, _>(reader), limits),
        Workbook::Xlsb => read_all(open_workbook_from_rs::<Xlsb<_>, _>(reader), limits),
        Workbook::Xls => read_all(open_workbook_from_rs::<Xls<_>, _>(reader), limits),
        Workbook::Ods => read_all(open_workbook_from_rs::<Ods<_>, _>(reader), limits),
    }?;
    let mut sink = BlockSink::default();
    for (index, (name, rows)) in sheets.iter().enumerate() {
        sink.set_page(Some(index as u32 + 1));
        sink.push(BlockKind::Heading { level: 1 }, name.clone());
        for row in rows {
            sink.push(BlockKind::Table, row.clone());
        }
    }
    Ok(ExtractedDocument {
        format: kind.name().into(),
        blocks: sink.finish(),
        page_count: Some(sheets.len() as u32),
        ..Default::default()
    })
}

type Sheets = Vec<(String, Vec<String>)>;

/// Every sheet's rows, each row's cells up to its last non-empty one.
fn read_all<RS, R, E>(workbook: Result<R, E>, limits: &Limits) -> Result<Sheets, ExtractError>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS, Error = E>,
    E: std::fmt::Display,
{
    let mut workbook = workbook.map_err(|err| error(&err))?;
    let names = workbook.sheet_names();
    if names.len() > limits.max_pages as usize {
        return Err(ExtractError::LimitExceeded {
            limit: "max_pages",
            detail: format!("{} sheets, over the limit of {}", names.len(), limits.max_pages),
        });
    }
    let mut sheets = Vec::with_capacity(names.len());
    for name in names {
        let range = workbook.worksheet_range(&name).map_err(|err| error(&err))?;
        let rows = range
            .rows()
            .filter_map(|row| {
                let cells: Vec<String> = row.iter().map(cell_text).collect();
                let last = cells.iter().rposition(|cell| !cell.is_empty())?;
                Some(cells[..=last].join(CELL_SEPARATOR))
            })
            .collect();
        sheets.push((name, rows));
    }
    Ok(sheets)
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty | Data::Error(_) => String::new(),
        Data::DateTime(value) if value.is_datetime() => {
            let (year, month, day, hour, minute, second, _) = value.to_ymd_hms_milli();
            if (hour, minute, second) == (0, 0, 0) {
                format!("{year:04}-{month:02}-{day:02}")
            } else {
                format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
            }
        }
        other => other.to_string().trim().to_owned(),
    }
}

/// calamine reports password protection as an ordinary error; tell it apart.
fn error(err: &impl std::fmt::Display) -> ExtractError {
    let detail = err.to_string();
    let lower = detail.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("encrypt") {
        ExtractError::Encrypted
    } else {
        ExtractError::Malformed { format: "workbook", detail }
    }
}
