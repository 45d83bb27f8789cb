//! Zip containers (OOXML, OpenDocument): reading parts under a budget of decompressed bytes,
//! so a zip bomb stops at the limit instead of filling memory.

use std::cell::Cell;
use std::io::{Cursor, Read};

use zip::ZipArchive;

use crate::ExtractError;

pub(crate) struct Package<'a> {
    archive: std::cell::RefCell<ZipArchive<Cursor<&'a [u8]>>>,
    budget_left: Cell<u64>,
    budget: u64,
}

impl<'a> Package<'a> {
    pub(crate) fn open(bytes: &'a [u8], max_decompressed_bytes: u64) -> Result<Self, ExtractError> {
        let archive = ZipArchive::new(Cursor::new(bytes))
            .map_err(|err| ExtractError::Malformed { format: "zip", detail: err.to_string() })?;
        Ok(Self {
            archive: std::cell::RefCell::new(archive),
            budget_left: Cell::new(max_decompressed_bytes),
            budget: max_decompressed_bytes,
        })
    }

    /// Names of the parts, in archive order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.archive.borrow().file_names().filter_map(Result::ok).map(|name| name.into_owned()).collect()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.archive.borrow().index_for_name(name).is_some()
    }

    /// Sum of the sizes the central directory declares for the parts (cheap, but only a claim).
    pub(crate) fn declared_size(&self) -> u64 {
        let archive = self.archive.borrow();
        (0..archive.len())
            .filter_map(|index| archive.by_index_data(index).ok().map(|entry| entry.size()))
            .fold(0u64, u64::saturating_add)
    }

    /// A part's bytes, or `None` if the archive has no such part. Reading stops, with
    /// `limit_exceeded`, as soon as the parts read so far inflate past the budget, whatever
    /// sizes the archive claims.
    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let mut archive = self.archive.borrow_mut();
        let Some(index) = archive.index_for_name(name) else { return Ok(None) };
        let mut file = archive.by_index(index).map_err(|err| match err {
            zip::result::ZipError::UnsupportedArchive(zip::result::ZipError::PASSWORD_REQUIRED) => {
                ExtractError::Encrypted
            }
            err => malformed(name, &err.to_string()),
        })?;
        let left = self.budget_left.get();
        let mut bytes = Vec::new();
        (&mut file).take(left + 1).read_to_end(&mut bytes).map_err(|err| malformed(name, &err.to_string()))?;
        let used = bytes.len() as u64;
        if used > left {
            return Err(ExtractError::LimitExceeded {
                limit: "max_decompressed_bytes",
                detail: format!("the parts inflate past {} bytes (at {name}): a zip bomb or a huge file", self.budget),
            });
        }
        self.budget_left.set(left - used);
        Ok(Some(bytes))
    }

    /// Like [`Package::read`], for a part the format requires.
    pub(crate) fn require(&self, name: &str) -> Result<Vec<u8>, ExtractError> {
        self.read(name)?.ok_or_else(|| malformed(name, "the part is missing"))
    }
}

fn malformed(name: &str, detail: &str) -> ExtractError {
    ExtractError::Malformed { format: "zip", detail: format!("{name}: {detail}") }
}
