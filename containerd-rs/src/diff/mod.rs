//! Applying layer tars onto snapshot mounts (Diff.Apply).
//!
//! On an overlay mount the layer is written straight into its upperdir and OCI whiteouts become
//! overlay whiteouts: `.wh.x` → a 0/0 character device `x`, `.wh..wh..opq` → the directory's
//! `trusted.overlay.opaque=y`. On a bind mount (a first layer, native snapshots) the whiteouts
//! delete what they name. Other mounts are mounted in a temporary directory first.
//! [`compare`] produces layers (Diff.Diff).

pub mod compare;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::content::ContentStore;
use crate::mount::TempMount;
use crate::snapshot::MountSpec;

pub const MEDIA_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("unsupported media type {0}: not implemented")]
    MediaType(String),
    #[error("apply {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("invalid tar entry path {0:?}: invalid argument")]
    BadPath(String),
    #[error("mounts: {0}: invalid argument")]
    Mounts(String),
}

impl From<DiffError> for errdefs::Error {
    fn from(e: DiffError) -> Self {
        let msg = e.to_string();
        match e {
            DiffError::MediaType(_) => errdefs::Error::unimplemented(msg),
            DiffError::BadPath(_) | DiffError::Mounts(_) => errdefs::Error::invalid(msg),
            DiffError::Io { .. } => {
                tracing::error!(error = %msg, "diff");
                errdefs::Error::internal(msg)
            }
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DiffError + '_ {
    move |source| DiffError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where a layer is written.
enum Target {
    /// An overlay upperdir: whiteouts become overlay whiteouts.
    Upper(PathBuf),
    /// A plain directory: whiteouts delete.
    Plain(PathBuf),
}

/// Counts and hashes what passes through (the uncompressed digest of a layer).
struct HashReader<R> {
    inner: R,
    hash: Sha256,
    size: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Opens a possibly compressed layer as its uncompressed byte stream.
pub fn decompress(media_type: &str, file: fs::File) -> Result<Box<dyn Read + Send>, DiffError> {
    let supported = media_type.is_empty()
        || media_type.contains("tar")
        || media_type.ends_with(".layer")
        || media_type.contains("rootfs.diff");
    if !supported {
        return Err(DiffError::MediaType(media_type.to_string()));
    }
    let mut r = io::BufReader::new(file);
    let magic = {
        use std::io::BufRead;
        r.fill_buf()
            .map_err(|source| DiffError::Io {
                path: "layer".into(),
                source,
            })?
            .to_vec()
    };
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(r).map_err(|source| DiffError::Io {
                path: "zstd".into(),
                source,
            })?,
        )
    } else {
        Box::new(r)
    })
}

/// Applies the blob `digest` onto `mounts`; returns the uncompressed digest and size.
pub fn apply(
    content: &ContentStore,
    media_type: &str,
    digest: &str,
    mounts: &[MountSpec],
    tmp: &Path,
) -> Result<(String, i64), errdefs::Error> {
    let file = content.open_blob(digest)?;
    let reader = decompress(media_type, file)?;
    let mut _guard = None;
    let target = match mounts {
        [m] if m.kind == "overlay" => {
            let upper = m
                .options
                .iter()
                .find_map(|o| o.strip_prefix("upperdir="))
                .ok_or_else(|| DiffError::Mounts("overlay mount without upperdir".into()))?;
            Target::Upper(PathBuf::from(upper))
        }
        [m] if m.kind == "bind" && !m.options.iter().any(|o| o == "ro") => {
            Target::Plain(PathBuf::from(&m.source))
        }
        [] => return Err(DiffError::Mounts("no mounts".into()).into()),
        _ => {
            let g = TempMount::new(tmp, mounts)?;
            let p = g.path.clone();
            _guard = Some(g);
            Target::Plain(p)
        }
    };
    let mut hr = HashReader {
        inner: reader,
        hash: Sha256::new(),
        size: 0,
    };
    unpack(&mut hr, &target)?;
    // Read the tar's trailing padding too: the diff id covers every byte.
    io::copy(&mut hr, &mut io::sink()).map_err(io_at(Path::new("layer")))?;
    Ok((
        format!("sha256:{}", hex::encode(hr.hash.finalize())),
        hr.size as i64,
    ))
}

/// The relative, normalized path of an entry; `..` is refused.
fn clean(path: &Path) -> Result<PathBuf, DiffError> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            _ => return Err(DiffError::BadPath(path.display().to_string())),
        }
    }
    Ok(out)
}

fn remove_any(p: &Path) -> Result<(), DiffError> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p).map_err(io_at(p)),
        Ok(_) => fs::remove_file(p).map_err(io_at(p)),
        Err(_) => Ok(()),
    }
}

fn unpack(reader: &mut dyn Read, target: &Target) -> Result<(), DiffError> {
    let (root, upper) = match target {
        Target::Upper(p) => (p.as_path(), true),
        Target::Plain(p) => (p.as_path(), false),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let mut written: HashSet<PathBuf> = HashSet::new();
    let mut dirs = Vec::new();
    for entry in archive.entries().map_err(io_at(root))? {
        let mut entry = entry.map_err(io_at(root))?;
        let raw = entry.path().map_err(io_at(root))?.into_owned();
        let rel = clean(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = root.join(&parent_rel);
        if name.starts_with(WHITEOUT_PREFIX) {
            fs::create_dir_all(&parent).map_err(io_at(&parent))?;
            if name == OPAQUE {
                if upper {
                    xattr::set(&parent, "trusted.overlay.opaque", b"y").map_err(io_at(&parent))?;
                } else if let Ok(rd) = fs::read_dir(&parent) {
                    for e in rd.flatten() {
                        let child = parent_rel.join(e.file_name());
                        if !written.contains(&child) {
                            remove_any(&e.path())?;
                        }
                    }
                }
            } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                let victim = parent.join(hidden);
                remove_any(&victim)?;
                if upper {
                    nix::sys::stat::mknod(
                        &victim,
                        nix::sys::stat::SFlag::S_IFCHR,
                        nix::sys::stat::Mode::empty(),
                        nix::sys::stat::makedev(0, 0),
                    )
                    .map_err(|e| io_at(&victim)(io::Error::from(e)))?;
                }
            }
            continue;
        }
        let dest = root.join(&rel);
        fs::create_dir_all(&parent).map_err(io_at(&parent))?;
        let kind = entry.header().entry_type();
        if let Ok(md) = fs::symlink_metadata(&dest) {
            if !(md.is_dir() && kind.is_dir()) {
                remove_any(&dest)?;
            }
        }
        if kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(io_at(&dest))?
                .ok_or_else(|| DiffError::BadPath(rel.display().to_string()))?;
            let src = root.join(clean(&link)?);
            fs::hard_link(&src, &dest).map_err(io_at(&dest))?;
        } else {
            entry.unpack(&dest).map_err(io_at(&dest))?;
            if kind.is_dir() {
                dirs.push((dest.clone(), entry.header().mtime().unwrap_or(0)));
            }
        }
        written.insert(rel);
    }
    // Directory times last: writing their children changed them.
    for (d, mtime) in dirs {
        let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
        let _ = filetime::set_file_times(&d, t, t);
    }
    Ok(())
}
