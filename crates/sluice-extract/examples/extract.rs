//! Prints what the extractor makes of a file: `cargo run --release --example extract -- FILE`.

fn main() {
    let path = std::env::args().nth(1).expect("usage: extract FILE");
    let bytes = std::fs::read(&path).expect("readable file");
    match sluice_extract::extract(&bytes, &path) {
        Ok(document) => {
            println!("format {} title {:?} pages {:?}", document.format, document.title, document.page_count);
            for block in document.blocks {
                println!("[{:?} p{:?}] {}", block.kind, block.page, block.text);
            }
        }
        Err(err) => println!("error ({}): {err}", err.reason()),
    }
}
