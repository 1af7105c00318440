//! A container's filesystem as `docker cp`, `export` and `diff` see it, without mounting
//! anything: a running container through `/proc/<pid>/root`, a stopped one as the layers of its
//! overlay snapshot (upper dir first, then the lower dirs, with overlayfs's whiteouts and opaque
//! directories). Symlinks are resolved here, inside the container's root, never by the host
//! (an absolute link must not lead out of the container).
use std::collections::{BTreeSet, VecDeque};
use std::fs::Metadata;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Filesystem view failures.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("not a directory: {0}")]
    NotDir(String),
    #[error("too many levels of symbolic links: {0}")]
    Loop(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_at(p: &Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
    move |source| FsError::Io {
        path: p.display().to_string(),
        source,
    }
}

/// What one layer holds at a path.
enum Probe {
    Absent,
    /// A whiteout, or an ancestor that is a whiteout or not a directory: hides lower layers.
    Hidden,
    Found(PathBuf, Metadata),
}

/// A container's root filesystem.
pub struct View {
    /// Top first; one directory for a live container.
    layers: Vec<PathBuf>,
    /// Interpret whiteouts and opaque directories (overlay layers).
    overlay: bool,
}

fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    xattr::get(p, "trusted.overlay.opaque")
        .ok()
        .flatten()
        .as_deref()
        == Some(b"y")
}

/// A path inside the container as normalized relative components (no `.`, `..` or root).
fn components(rel: &Path) -> Vec<String> {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

impl View {
    /// A running container's root as its processes see it (volumes included).
    pub fn live(root: PathBuf) -> Self {
        View {
            layers: vec![root],
            overlay: false,
        }
    }

    /// An overlay snapshot: `upper` then `lowers` (topmost first).
    pub fn layered(upper: PathBuf, lowers: Vec<PathBuf>) -> Self {
        let mut layers = vec![upper];
        layers.extend(lowers);
        View {
            layers,
            overlay: true,
        }
    }

    /// The writable layer (upper dir, or the live root).
    pub fn top(&self) -> &Path {
        &self.layers[0]
    }

    /// The lower layers (empty for a live view).
    pub fn lowers(&self) -> View {
        View {
            layers: self.layers[1..].to_vec(),
            overlay: true,
        }
    }

    /// Looks `rel` up in one layer; `opaque` is set when an ancestor there is opaque.
    fn probe(&self, layer: &Path, rel: &Path, opaque: &mut bool) -> Probe {
        let comps = components(rel);
        let mut acc = layer.to_path_buf();
        for (i, c) in comps.iter().enumerate() {
            acc.push(c);
            let md = match std::fs::symlink_metadata(&acc) {
                Ok(md) => md,
                Err(_) => return Probe::Absent,
            };
            let last = i + 1 == comps.len();
            if self.overlay && is_whiteout(&md) {
                return Probe::Hidden;
            }
            if last {
                return Probe::Found(acc, md);
            }
            if !md.is_dir() {
                return Probe::Hidden;
            }
            if self.overlay && is_opaque(&acc) {
                *opaque = true;
            }
        }
        // The root itself: followed, as a live root is the magic link /proc/<pid>/root.
        match std::fs::metadata(layer) {
            Ok(md) => Probe::Found(layer.to_path_buf(), md),
            Err(_) => Probe::Absent,
        }
    }

    /// The real path and metadata of `rel` (the last component not followed).
    pub fn locate(&self, rel: &Path) -> Option<(PathBuf, Metadata)> {
        for layer in &self.layers {
            let mut opaque = false;
            match self.probe(layer, rel, &mut opaque) {
                Probe::Found(p, md) => return Some((p, md)),
                Probe::Hidden => return None,
                Probe::Absent if opaque => return None,
                Probe::Absent => {}
            }
        }
        None
    }

    /// The real directories that make up directory `rel`, top first.
    fn dir_layers(&self, rel: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for layer in &self.layers {
            let mut opaque = false;
            match self.probe(layer, rel, &mut opaque) {
                Probe::Found(p, md) if md.is_dir() => {
                    let stop = self.overlay && is_opaque(&p);
                    out.push(p);
                    if stop {
                        break;
                    }
                }
                Probe::Found(..) | Probe::Hidden => break,
                Probe::Absent => {}
            }
            if opaque {
                break;
            }
        }
        out
    }

    /// Entry names of directory `rel` in the merged view, sorted.
    pub fn read_dir(&self, rel: &Path) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut shown = BTreeSet::new();
        for dir in self.dir_layers(rel) {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !seen.insert(name.clone()) {
                    continue;
                }
                let whiteout = self.overlay && e.metadata().is_ok_and(|m| is_whiteout(&m));
                if !whiteout {
                    shown.insert(name);
                }
            }
        }
        shown.into_iter().collect()
    }

    /// Resolves a path inside the container to normalized components, following symlinks
    /// within the container's root (the last one only when `follow_last`).
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<PathBuf, FsError> {
        // `..` applies to what is resolved so far, so it stays a component here.
        let mut queue: VecDeque<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        let mut out: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = queue.pop_front() {
            if c == ".." {
                out.pop();
                continue;
            }
            out.push(c);
            if queue.is_empty() && !follow_last {
                break;
            }
            let rel: PathBuf = out.iter().collect();
            let Some((real, md)) = self.locate(&rel) else {
                if queue.is_empty() {
                    break;
                }
                return Err(FsError::NotFound(path.to_string()));
            };
            if md.file_type().is_symlink() {
                links += 1;
                if links > 255 {
                    return Err(FsError::Loop(path.to_string()));
                }
                let target = std::fs::read_link(&real).map_err(io_at(&real))?;
                let t = target.to_string_lossy().into_owned();
                out.pop();
                if t.starts_with('/') {
                    out.clear();
                }
                for part in t.split('/').rev().filter(|p| !p.is_empty() && *p != ".") {
                    queue.push_front(part.to_string());
                }
            } else if !md.is_dir() && !queue.is_empty() {
                return Err(FsError::NotDir(path.to_string()));
            }
        }
        Ok(out.iter().collect())
    }

    /// Writes `rel` (recursively) as tar entries named under `name`.
    pub fn tar<W: Write>(
        &self,
        rel: &Path,
        name: &str,
        b: &mut tar::Builder<W>,
    ) -> Result<(), FsError> {
        let Some((real, md)) = self.locate(rel) else {
            return Err(FsError::NotFound(rel.display().to_string()));
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid() as u64);
        h.set_gid(md.gid() as u64);
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        let ft = md.file_type();
        let werr = |e: std::io::Error| FsError::Io {
            path: name.to_string(),
            source: e,
        };
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            if !name.is_empty() {
                b.append_data(&mut h, format!("{name}/"), std::io::empty())
                    .map_err(werr)?;
            }
            for child in self.read_dir(rel) {
                let n = if name.is_empty() {
                    child.clone()
                } else {
                    format!("{name}/{child}")
                };
                self.tar(&rel.join(&child), &n, b)?;
            }
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = std::fs::read_link(&real).map_err(io_at(&real))?;
            b.append_link(&mut h, name, target).map_err(werr)?;
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(md.len());
            let f = std::fs::File::open(&real).map_err(io_at(&real))?;
            b.append_data(&mut h, name, f.take(md.len()))
                .map_err(werr)?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                return Ok(()); // sockets are not archived
            };
            h.set_entry_type(kind);
            let rdev = md.rdev();
            h.set_device_major(nix::sys::stat::major(rdev) as u32)
                .map_err(werr)?;
            h.set_device_minor(nix::sys::stat::minor(rdev) as u32)
                .map_err(werr)?;
            b.append_data(&mut h, name, std::io::empty())
                .map_err(werr)?;
        }
        Ok(())
    }

    /// The real directory for `rel` in the top layer, creating (copying up) missing ancestors
    /// with the merged view's mode and owner.
    fn writable_dir(&self, rel: &Path) -> Result<PathBuf, FsError> {
        let mut real = self.layers[0].clone();
        let mut acc = PathBuf::new();
        for c in components(rel) {
            acc.push(&c);
            real.push(&c);
            match std::fs::symlink_metadata(&real) {
                Ok(md) if md.is_dir() => continue,
                Ok(_) => return Err(FsError::NotDir(acc.display().to_string())),
                Err(_) => {}
            }
            let Some((_, md)) = self.locate(&acc).filter(|(_, m)| m.is_dir()) else {
                return Err(FsError::NotFound(acc.display().to_string()));
            };
            std::fs::create_dir(&real).map_err(io_at(&real))?;
            std::fs::set_permissions(&real, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(io_at(&real))?;
            std::os::unix::fs::lchown(&real, Some(md.uid()), Some(md.gid()))
                .map_err(io_at(&real))?;
        }
        Ok(real)
    }

    /// Extracts a tar stream into directory `dest` (already resolved), as dockerd's
    /// PUT /archive: `no_overwrite_dir_non_dir` refuses to replace a directory by a
    /// non-directory or the reverse; without `copy_uid_gid` files belong to root.
    pub fn extract<R: Read>(
        &self,
        dest: &Path,
        r: R,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> Result<(), FsError> {
        let mut ar = tar::Archive::new(r);
        let entries = ar
            .entries()
            .map_err(|e| FsError::Invalid(format!("invalid tar: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| FsError::Invalid(format!("invalid tar: {e}")))?;
            let path = entry
                .path()
                .map_err(|e| FsError::Invalid(format!("invalid tar entry: {e}")))?
                .into_owned();
            if path.components().any(|c| c == Component::ParentDir) {
                return Err(FsError::Invalid(format!(
                    "invalid tar entry path {}",
                    path.display()
                )));
            }
            let comps = components(&path);
            let Some((name, parents)) = comps.split_last() else {
                continue;
            };
            // Each entry's parent is resolved again: an earlier entry may be a symlink.
            let parent_in = format!("/{}/{}", components(dest).join("/"), parents.join("/"));
            let parent = self.resolve(&parent_in, true)?;
            let dir = self.writable_dir(&parent)?;
            let target = dir.join(name);
            let existing = self.locate(&parent.join(name)).map(|(_, m)| m);
            let kind = entry.header().entry_type();
            let is_dir = kind.is_dir();
            if no_overwrite_dir_non_dir {
                if let Some(m) = &existing {
                    if m.is_dir() && !is_dir {
                        return Err(FsError::Invalid(format!(
                            "cannot overwrite directory {:?} with non-directory {:?}",
                            parent.join(name),
                            path
                        )));
                    }
                    if !m.is_dir() && is_dir {
                        return Err(FsError::Invalid(format!(
                            "cannot overwrite non-directory {:?} with directory {:?}",
                            parent.join(name),
                            path
                        )));
                    }
                }
            }
            let top_md = std::fs::symlink_metadata(&target).ok();
            let replaced_whiteout = top_md
                .as_ref()
                .is_some_and(|m| self.overlay && is_whiteout(m));
            match &top_md {
                Some(m) if m.is_dir() && is_dir => {}
                Some(m) if m.is_dir() => {
                    std::fs::remove_dir_all(&target).map_err(io_at(&target))?
                }
                Some(_) => std::fs::remove_file(&target).map_err(io_at(&target))?,
                None => {}
            }
            let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
            match kind {
                tar::EntryType::Directory => {
                    if !target.is_dir() {
                        std::fs::create_dir(&target).map_err(io_at(&target))?;
                        // A directory that replaces a deleted one must not show the old contents.
                        if replaced_whiteout
                            || (existing.as_ref().is_some_and(|m| !m.is_dir()) && self.overlay)
                        {
                            xattr::set(&target, "trusted.overlay.opaque", b"y")
                                .map_err(io_at(&target))?;
                        }
                    }
                }
                tar::EntryType::Symlink => {
                    let link = entry
                        .link_name()
                        .ok()
                        .flatten()
                        .ok_or_else(|| FsError::Invalid("symlink without target".into()))?;
                    std::os::unix::fs::symlink(&link, &target).map_err(io_at(&target))?;
                }
                tar::EntryType::Link => {
                    let link = entry
                        .link_name()
                        .ok()
                        .flatten()
                        .ok_or_else(|| FsError::Invalid("hard link without target".into()))?;
                    let rel = self.resolve(
                        &format!("/{}/{}", components(dest).join("/"), link.display()),
                        false,
                    )?;
                    let (src, _) = self
                        .locate(&rel)
                        .ok_or_else(|| FsError::NotFound(link.display().to_string()))?;
                    if src.starts_with(&self.layers[0]) {
                        std::fs::hard_link(&src, &target).map_err(io_at(&target))?;
                    } else {
                        std::fs::copy(&src, &target).map_err(io_at(&target))?;
                    }
                }
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    let sflag = match kind {
                        tar::EntryType::Char => nix::sys::stat::SFlag::S_IFCHR,
                        tar::EntryType::Block => nix::sys::stat::SFlag::S_IFBLK,
                        _ => nix::sys::stat::SFlag::S_IFIFO,
                    };
                    let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                    let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                    nix::sys::stat::mknod(
                        &target,
                        sflag,
                        nix::sys::stat::Mode::from_bits_truncate(mode),
                        nix::sys::stat::makedev(major as u64, minor as u64),
                    )
                    .map_err(|e| FsError::Io {
                        path: target.display().to_string(),
                        source: e.into(),
                    })?;
                }
                _ => {
                    let mut f = std::fs::File::create(&target).map_err(io_at(&target))?;
                    std::io::copy(&mut entry, &mut f).map_err(io_at(&target))?;
                }
            }
            let (uid, gid) = if copy_uid_gid {
                (
                    entry.header().uid().unwrap_or(0) as u32,
                    entry.header().gid().unwrap_or(0) as u32,
                )
            } else {
                (0, 0)
            };
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(io_at(&target))?;
            if kind != tar::EntryType::Symlink {
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(io_at(&target))?;
            }
            if let Ok(mtime) = entry.header().mtime() {
                let t = nix::sys::time::TimeSpec::new(mtime as i64, 0);
                let _ = nix::sys::stat::utimensat(
                    None,
                    &target,
                    &t,
                    &t,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                );
            }
        }
        Ok(())
    }
}

/// Go's `os.FileMode` bits for a file, as `X-Docker-Container-Path-Stat` carries them.
pub fn go_file_mode(md: &Metadata) -> u32 {
    let ft = md.file_type();
    let mut m = md.mode() & 0o777;
    if ft.is_dir() {
        m |= 1 << 31;
    } else if ft.is_symlink() {
        m |= 1 << 27;
    } else if ft.is_block_device() {
        m |= 1 << 26;
    } else if ft.is_char_device() {
        m |= (1 << 26) | (1 << 21);
    } else if ft.is_fifo() {
        m |= 1 << 25;
    } else if ft.is_socket() {
        m |= 1 << 24;
    }
    let raw = md.mode();
    if raw & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if raw & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if raw & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(p: &Path) {
        nix::sys::stat::mknod(
            p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .expect("mknod whiteout (tests run as root)");
    }

    #[test]
    fn layers_merge_with_whiteouts_opaque_dirs_and_inner_symlinks() {
        let t = tempfile::tempdir().expect("tempdir");
        let (up, low) = (t.path().join("up"), t.path().join("low"));
        for d in [&up, &low] {
            std::fs::create_dir_all(d.join("etc")).expect("mkdir");
        }
        std::fs::write(low.join("etc/passwd"), "root\n").expect("write");
        std::fs::write(low.join("etc/gone"), "x").expect("write");
        std::fs::create_dir_all(low.join("opq/old")).expect("mkdir");
        std::fs::create_dir_all(up.join("opq")).expect("mkdir");
        xattr::set(up.join("opq"), "trusted.overlay.opaque", b"y").expect("xattr");
        std::fs::write(up.join("opq/new"), "n").expect("write");
        whiteout(&up.join("etc/gone"));
        std::fs::write(up.join("etc/added"), "a").expect("write");
        std::os::unix::fs::symlink("/etc", up.join("link")).expect("symlink");
        let v = View::layered(up.clone(), vec![low.clone()]);
        assert_eq!(v.read_dir(Path::new("etc")), ["added", "passwd"]);
        assert_eq!(v.read_dir(Path::new("opq")), ["new"]);
        assert!(v.locate(Path::new("etc/gone")).is_none());
        assert!(v.locate(Path::new("opq/old")).is_none());
        assert_eq!(
            v.locate(Path::new("etc/passwd")).map(|(p, _)| p),
            Some(low.join("etc/passwd"))
        );
        // An absolute symlink stays inside the container's root.
        assert_eq!(
            v.resolve("/link/passwd", true).expect("resolve"),
            Path::new("etc/passwd")
        );
        assert_eq!(
            v.resolve("/../../link", false).expect("resolve"),
            Path::new("link")
        );
        assert_eq!(v.resolve("/link", true).expect("resolve"), Path::new("etc"));
        assert!(matches!(
            v.resolve("/etc/passwd/x", true),
            Err(FsError::NotDir(_))
        ));
        // Extracting copies the parent up and shadows the lower file.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_size(3);
        b.append_data(&mut h, "passwd", &b"new"[..])
            .expect("append");
        let data = b.into_inner().expect("tar");
        v.extract(Path::new("etc"), data.as_slice(), true, false)
            .expect("extract");
        assert_eq!(std::fs::read(up.join("etc/passwd")).expect("read"), b"new");
        assert_eq!(
            std::fs::read(low.join("etc/passwd")).expect("read"),
            b"root\n"
        );
    }
}
