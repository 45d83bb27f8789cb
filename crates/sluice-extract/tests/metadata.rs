//! Document metadata from real files of `../shared/corpora/extraction` (skipped where that folder
//! is absent): the authors, subjects and dates their e-mail headers, Office properties and PDF
//! information dictionaries hold, in `sluice_extract::metadata`'s names and date form.

use std::path::Path;

use sluice_extract::{Limits, extract, metadata};

struct Expected {
    file: &'static str,
    title: Option<&'static str>,
    authors: &'static [&'static str],
    recipients: &'static [&'static str],
    subject: Option<&'static str>,
    created: Option<&'static str>,
    modified: Option<&'static str>,
    mime_type: &'static str,
}

const NONE: Expected = Expected {
    file: "",
    title: None,
    authors: &[],
    recipients: &[],
    subject: None,
    created: None,
    modified: None,
    mime_type: "",
};

#[test]
fn e_mail_office_and_pdf_files_come_out_with_their_authors_and_dates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/extraction");
    if !root.is_dir() {
        eprintln!("SKIPPED: {} is absent (the shared corpora are not in this checkout)", root.display());
        return;
    }
    let cases = [
        Expected {
            file: "mimekit-email/messages/simple-multipart.eml",
            title: Some("this is a simple multipart message"),
            authors: &["mimekit@example.com"],
            recipients: &["mimekit@example.com"],
            subject: Some("this is a simple multipart message"),
            created: Some("2013-11-12T14:12:42Z"),
            mime_type: "message/rfc822",
            ..NONE
        },
        Expected {
            file: "mimekit-email/messages/japanese.txt",
            authors: &["Atsushi Eno <x@x.com>"],
            recipients: &["Jeffrey Stedfast <x@x.com>"],
            created: Some("2015-07-21T16:02:29Z"),
            mime_type: "message/rfc822",
            ..NONE
        },
        Expected {
            file: "python-docx/doc-coreprops.docx",
            title: Some("Title"),
            authors: &["Steve Canny"],
            subject: Some("Subject"),
            created: Some("2014-12-13T22:02:00Z"),
            modified: Some("2014-12-13T22:06:00Z"),
            mime_type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ..NONE
        },
        Expected {
            file: "python-pptx/minimal.pptx",
            title: Some("Presentation"),
            authors: &["python-pptx"],
            created: Some("2012-11-17T11:07:40Z"),
            modified: Some("2013-11-04T06:38:12Z"),
            mime_type: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ..NONE
        },
        Expected {
            file: "pypdf-sample-files/008-reportlab-inline-image/inline-image.pdf",
            authors: &["anonymous"],
            created: Some("2022-04-15T14:30:24Z"),
            modified: Some("2022-04-15T14:30:24Z"),
            mime_type: "application/pdf",
            ..NONE
        },
    ];
    for case in cases {
        let bytes = std::fs::read(root.join(case.file)).unwrap_or_else(|err| panic!("{}: {err}", case.file));
        let name = case.file.rsplit('/').next().unwrap();
        let document = extract(&bytes, name, &Limits::default()).unwrap_or_else(|err| panic!("{}: {err}", case.file));
        let found = metadata::describe(&document);
        let file = case.file;
        if case.title.is_some() {
            assert_eq!(document.title.as_deref(), case.title, "{file}: title");
        }
        assert_eq!(found.authors, case.authors, "{file}: authors");
        assert_eq!(found.recipients, case.recipients, "{file}: recipients");
        if case.subject.is_some() {
            assert_eq!(found.subject.as_deref(), case.subject, "{file}: subject");
        }
        assert_eq!(found.created.as_deref(), case.created, "{file}: created");
        assert_eq!(found.modified.as_deref(), case.modified, "{file}: modified");
        assert_eq!(found.mime_type, case.mime_type, "{file}: MIME type");
    }
}
