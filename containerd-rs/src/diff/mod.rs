//! Applying layer tars onto snapshot mounts (Diff.Apply).
//!
//! On an overlay mount the layer is written straight into its upperdir and OCI whiteouts become
//! overlay whiteouts: `.wh.x` → a 0/0 character device `x`, `.wh..wh..opq` → the directory's
//! `trusted.overlay.opaque=y`. On a bind mount (a first layer, native snapshots) the whiteouts
//! delete what they name. Other mounts are mounted in a temporary directory first.
//! [`compare`] produces layers (Diff.Diff).

pub mod compare;

use std::collections::HashSet;
use std::ffi::OsString;
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

/// Where the entry `rel` lands under `root` taken as the layer's `/`: symlinks met in its parent
/// directories are followed but never lead out of `root` (an absolute target starts again at
/// `root`, `..` stops there), as containerd's continuity `fs.RootPath` resolves them. The last
/// component is not followed: an entry replaces a symlink, it does not write through it.
fn in_root(root: &Path, rel: &Path) -> Result<PathBuf, DiffError> {
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok(resolve(root, parent)?.join(name)),
        _ => Ok(root.to_path_buf()),
    }
}

/// `rel` under `root` with every symlink in it resolved inside `root`.
fn resolve(root: &Path, rel: &Path) -> Result<PathBuf, DiffError> {
    fn push_rev(todo: &mut Vec<OsString>, path: &Path) {
        for c in path.components().rev() {
            match c {
                Component::Normal(n) => todo.push(n.to_os_string()),
                Component::ParentDir => todo.push("..".into()),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
    }
    let mut done = PathBuf::new();
    let mut todo = Vec::new();
    push_rev(&mut todo, rel);
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let at = root.join(&done).join(&c);
        match fs::symlink_metadata(&at) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(DiffError::BadPath(format!(
                        "{}: too many levels of symbolic links",
                        rel.display()
                    )));
                }
                let target = fs::read_link(&at).map_err(io_at(&at))?;
                if target.is_absolute() {
                    done = PathBuf::new();
                }
                push_rev(&mut todo, &target);
            }
            _ => done.push(&c),
        }
    }
    Ok(root.join(done))
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
        let Some(file_name) = rel.file_name() else {
            continue;
        };
        let name = file_name.to_str().unwrap_or("");
        // Symlinks in the entry's directories are resolved inside the root (a layer must not
        // write, delete or link anything outside its snapshot).
        let parent = resolve(root, rel.parent().unwrap_or(Path::new("")))?;
        if name.starts_with(WHITEOUT_PREFIX) {
            fs::create_dir_all(&parent).map_err(io_at(&parent))?;
            if name == OPAQUE {
                if upper {
                    xattr::set(&parent, "trusted.overlay.opaque", b"y").map_err(io_at(&parent))?;
                } else if let Ok(rd) = fs::read_dir(&parent) {
                    for e in rd.flatten() {
                        if !written.contains(&e.path()) {
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
        let dest = parent.join(file_name);
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
            let src = in_root(root, &clean(&link)?)?;
            fs::hard_link(&src, &dest).map_err(io_at(&dest))?;
        } else {
            entry.unpack(&dest).map_err(io_at(&dest))?;
            if kind.is_dir() {
                dirs.push((dest.clone(), entry.header().mtime().unwrap_or(0)));
            }
        }
        written.insert(dest);
    }
    // Directory times last: writing their children changed them. Not followed: a later entry
    // may have replaced the directory with a symlink.
    for (d, mtime) in dirs {
        let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
        let _ = filetime::set_symlink_file_times(&d, t, t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
        symlink("usr/bin", root.join("bin")).expect("symlink");
        symlink("/usr", root.join("abs")).expect("symlink");
        symlink("../../../../../../../etc", root.join("up")).expect("symlink");
        symlink("loop-b", root.join("loop-a")).expect("symlink");
        symlink("loop-a", root.join("loop-b")).expect("symlink");
        let at = |p: &str| {
            in_root(root, Path::new(p)).map(|p| p.strip_prefix(root).map(Path::to_path_buf))
        };
        assert_eq!(
            at("bin/sh").expect("bin/sh"),
            Ok(PathBuf::from("usr/bin/sh"))
        );
        assert_eq!(
            at("abs/bin/x").expect("abs"),
            Ok(PathBuf::from("usr/bin/x"))
        );
        assert_eq!(
            at("up/passwd").expect("up"),
            Ok(PathBuf::from("etc/passwd"))
        );
        // The last component is the entry itself: not followed.
        assert_eq!(at("bin").expect("bin"), Ok(PathBuf::from("bin")));
        assert!(matches!(at("loop-a/x"), Err(DiffError::BadPath(_))));
    }
}
