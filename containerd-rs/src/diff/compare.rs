//! Diff.Diff: the changes between two mounts as a layer tar (OCI whiteouts).
//! Fast path: when `right` is an overlay whose lowerdirs are `left`, the upperdir is the change
//! set (overlay whiteouts become `.wh.` entries). Otherwise both are mounted and compared.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::content::ContentStore;
use crate::mount::TempMount;
use crate::snapshot::MountSpec;

use super::DiffError;

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DiffError + '_ {
    move |source| DiffError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn upper_of(m: &[MountSpec]) -> Option<(PathBuf, Vec<String>)> {
    match m {
        [m] if m.kind == "overlay" => {
            let up = m.options.iter().find_map(|o| o.strip_prefix("upperdir="))?;
            let low = m
                .options
                .iter()
                .find_map(|o| o.strip_prefix("lowerdir="))
                .map(|l| l.split(':').map(str::to_string).collect())
                .unwrap_or_default();
            Some((PathBuf::from(up), low))
        }
        _ => None,
    }
}

fn lowers_of(m: &[MountSpec]) -> Option<Vec<String>> {
    match m {
        [] => Some(Vec::new()),
        [m] if m.kind == "bind" => Some(vec![m.source.clone()]),
        [m] if m.kind == "overlay" => {
            let mut v: Vec<String> = Vec::new();
            if let Some(up) = m.options.iter().find_map(|o| o.strip_prefix("upperdir=")) {
                v.push(up.to_string());
            }
            if let Some(l) = m.options.iter().find_map(|o| o.strip_prefix("lowerdir=")) {
                v.extend(l.split(':').map(str::to_string));
            }
            Some(v)
        }
        _ => None,
    }
}

/// Writes the tar into the content store; returns (digest, size) of the (compressed) blob.
pub fn diff(
    content: &ContentStore,
    left: &[MountSpec],
    right: &[MountSpec],
    media_type: &str,
    tmp: &Path,
) -> Result<(String, i64), errdefs::Error> {
    let gzip = media_type.ends_with("gzip");
    if !(media_type.ends_with(".tar") || gzip) {
        return Err(DiffError::MediaType(media_type.to_string()).into());
    }
    let out_path = content
        .tmp_dir()
        .join(format!("diff-{}", uuid::Uuid::new_v4().simple()));
    let file = fs::File::create(&out_path).map_err(io_at(&out_path))?;
    let writer: Box<dyn Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ))
    } else {
        Box::new(file)
    };
    let mut b = tar::Builder::new(writer);
    b.follow_symlinks(false);
    let res = (|| -> Result<(), errdefs::Error> {
        match (upper_of(right), lowers_of(left)) {
            (Some((upper, lower)), Some(left_dirs)) if lower == left_dirs => {
                walk_upper(&mut b, &upper, &upper)?;
            }
            _ => {
                let l = TempMount::new(tmp, left)?;
                let r = TempMount::new(tmp, right)?;
                walk_compare(&mut b, &l.path, &r.path, Path::new(""))?;
            }
        }
        let w = b.into_inner().map_err(io_at(&out_path))?;
        drop(w);
        Ok(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&out_path);
        return Err(e);
    }
    let r = content.put_blob(&out_path);
    let _ = fs::remove_file(&out_path);
    Ok(r?)
}

fn append(b: &mut tar::Builder<Box<dyn Write>>, full: &Path, rel: &Path) -> Result<(), DiffError> {
    b.append_path_with_name(full, rel).map_err(io_at(full))
}

fn whiteout(
    b: &mut tar::Builder<Box<dyn Write>>,
    rel_dir: &Path,
    name: &str,
) -> Result<(), DiffError> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_mtime(0);
    let p = rel_dir.join(format!(".wh.{name}"));
    b.append_data(&mut h, &p, std::io::empty())
        .map_err(io_at(&p))
}

fn sorted(dir: &Path) -> Result<Vec<fs::DirEntry>, DiffError> {
    let mut v: Vec<fs::DirEntry> = fs::read_dir(dir).map_err(io_at(dir))?.flatten().collect();
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

fn walk_upper(
    b: &mut tar::Builder<Box<dyn Write>>,
    root: &Path,
    dir: &Path,
) -> Result<(), DiffError> {
    for e in sorted(dir)? {
        let full = e.path();
        let rel = full.strip_prefix(root).unwrap_or(&full).to_path_buf();
        let md = fs::symlink_metadata(&full).map_err(io_at(&full))?;
        let name = e.file_name().to_string_lossy().to_string();
        if md.file_type().is_char_device() && md.rdev() == 0 {
            whiteout(b, rel.parent().unwrap_or(Path::new("")), &name)?;
            continue;
        }
        append(b, &full, &rel)?;
        if md.is_dir() {
            if xattr::get(&full, "trusted.overlay.opaque")
                .ok()
                .flatten()
                .as_deref()
                == Some(b"y")
            {
                whiteout(b, &rel, ".wh..opq")?;
            }
            walk_upper(b, root, &full)?;
        }
    }
    Ok(())
}

fn changed(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.file_type() != b.file_type()
        || a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
        || (!a.is_dir()
            && (a.size() != b.size() || a.mtime() != b.mtime() || a.mtime_nsec() != b.mtime_nsec()))
}

fn walk_compare(
    b: &mut tar::Builder<Box<dyn Write>>,
    left: &Path,
    right: &Path,
    rel: &Path,
) -> Result<(), DiffError> {
    let rdir = right.join(rel);
    let ldir = left.join(rel);
    let mut names = std::collections::BTreeSet::new();
    if let Ok(rd) = fs::read_dir(&ldir) {
        names.extend(rd.flatten().map(|e| e.file_name()));
    }
    if let Ok(rd) = fs::read_dir(&rdir) {
        names.extend(rd.flatten().map(|e| e.file_name()));
    }
    for n in names {
        let r = rdir.join(&n);
        let l = ldir.join(&n);
        let relp = rel.join(&n);
        let rm = fs::symlink_metadata(&r).ok();
        let lm = fs::symlink_metadata(&l).ok();
        match (lm, rm) {
            (Some(_), None) => whiteout(b, rel, &n.to_string_lossy())?,
            (None, Some(rm)) => {
                append(b, &r, &relp)?;
                if rm.is_dir() {
                    walk_compare(b, left, right, &relp)?;
                }
            }
            (Some(lm), Some(rm)) => {
                if changed(&lm, &rm) {
                    append(b, &r, &relp)?;
                }
                if rm.is_dir() {
                    walk_compare(b, left, right, &relp)?;
                }
            }
            (None, None) => {}
        }
    }
    Ok(())
}
