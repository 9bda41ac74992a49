//! The Terraform files under `terraform/`, in memory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use hcl::{Attribute, Block, Body, Expression};

/// Every `.tf`, `.tfvars` and `.hcl` file (an environment's `backend.hcl`)
/// under a root directory, by path relative to it (with `/` separators);
/// hidden files (`.terraform.lock.hcl`) are left out.
#[derive(Debug, Clone)]
pub struct Tree {
    root: PathBuf,
    files: BTreeMap<String, String>,
}

impl Tree {
    /// The `terraform/` directory of this workspace.
    pub fn workspace() -> Tree {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("terraform/checks has a parent directory")
            .to_path_buf();
        Tree::load(&root).unwrap_or_else(|err| panic!("reading {}: {err}", root.display()))
    }

    /// Reads every `.tf`/`.tfvars`/`.hcl` file under `root`, skipping hidden
    /// directories (`.terraform`), `checks` (this crate) and `target`.
    pub fn load(root: &Path) -> std::io::Result<Tree> {
        let mut files = BTreeMap::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type()?.is_dir() {
                    if !name.starts_with('.') && name != "checks" && name != "target" {
                        pending.push(path);
                    }
                } else if !name.starts_with('.')
                    && (name.ends_with(".tf")
                        || name.ends_with(".tfvars")
                        || name.ends_with(".hcl"))
                {
                    let relative = path
                        .strip_prefix(root)
                        .expect("walked from root")
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    files.insert(relative, fs::read_to_string(&path)?);
                }
            }
        }
        Ok(Tree {
            root: root.to_path_buf(),
            files,
        })
    }

    /// A tree made of the given files (for tests).
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tree {
        Tree {
            root: PathBuf::from("<memory>"),
            files: files
                .into_iter()
                .map(|(path, text)| (path.to_owned(), text.to_owned()))
                .collect(),
        }
    }

    /// A copy with `from` replaced by `to` in one file; panics when `from` is
    /// not there, so a test cannot silently stop testing anything.
    pub fn with_replaced(&self, path: &str, from: &str, to: &str) -> Tree {
        let text = self
            .files
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the tree"));
        assert!(text.contains(from), "{path} does not contain {from:?}");
        let mut copy = self.clone();
        copy.files
            .insert(path.to_owned(), text.replacen(from, to, 1));
        copy
    }

    /// A copy with one more file (or one replaced whole).
    pub fn with_file(&self, path: &str, text: &str) -> Tree {
        let mut copy = self.clone();
        copy.files.insert(path.to_owned(), text.to_owned());
        copy
    }

    /// A copy without one file.
    pub fn without(&self, path: &str) -> Tree {
        let mut copy = self.clone();
        assert!(
            copy.files.remove(path).is_some(),
            "{path} is not in the tree"
        );
        copy
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Relative paths of every file.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    pub fn text(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Parses one file.
    pub fn parse(&self, path: &str) -> Result<Body, String> {
        let text = self
            .text(path)
            .ok_or_else(|| format!("{path} does not exist"))?;
        hcl::parse(text).map_err(|err| format!("{path} does not parse: {err}"))
    }

    /// Directories directly under `parent` that hold at least one file
    /// (e.g. `modules` → `modules/tables`, …).
    pub fn subdirectories(&self, parent: &str) -> Vec<String> {
        let prefix = format!("{parent}/");
        let mut dirs: Vec<String> = self
            .paths()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter_map(|rest| {
                rest.split_once('/')
                    .map(|(dir, _)| format!("{prefix}{dir}"))
            })
            .collect();
        dirs.dedup();
        dirs
    }

    /// The files directly in `dir`.
    pub fn files_in(&self, dir: &str) -> Vec<&str> {
        let prefix = format!("{dir}/");
        self.paths()
            .filter(|path| {
                path.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.contains('/'))
            })
            .collect()
    }

    /// The module in `dir`: all its `.tf` files parsed and merged.
    pub fn module(&self, dir: &str) -> Result<Module, String> {
        let mut structures = Vec::new();
        let mut any = false;
        for path in self.files_in(dir) {
            if path.ends_with(".tf") {
                any = true;
                structures.extend(self.parse(path)?.into_inner());
            }
        }
        if !any {
            return Err(format!("{dir} has no .tf files"));
        }
        Ok(Module {
            dir: dir.to_owned(),
            body: Body::from(structures),
        })
    }
}

/// One Terraform module (a directory), merged.
#[derive(Debug, Clone)]
pub struct Module {
    pub dir: String,
    pub body: Body,
}

impl Module {
    /// Blocks with this identifier (`resource`, `variable`, …).
    pub fn blocks<'a>(&'a self, identifier: &str) -> impl Iterator<Item = &'a Block> + use<'a> {
        nested(&self.body, identifier)
    }

    /// The block with this identifier and these labels.
    pub fn block(&self, identifier: &str, labels: &[&str]) -> Option<&Block> {
        self.blocks(identifier).find(|block| {
            block.labels().len() == labels.len()
                && block
                    .labels()
                    .iter()
                    .zip(labels)
                    .all(|(label, wanted)| label.as_str() == *wanted)
        })
    }

    /// `resource "<kind>" "<name>"`.
    pub fn resource(&self, kind: &str, name: &str) -> Result<&Block, String> {
        self.block("resource", &[kind, name])
            .ok_or_else(|| format!("{}: resource {kind}.{name} is missing", self.dir))
    }

    /// Every `locals` attribute.
    pub fn locals(&self) -> impl Iterator<Item = &Attribute> {
        self.blocks("locals")
            .flat_map(|block| block.body().attributes())
    }

    /// The directory a `module` block's relative `source` points at.
    pub fn source_dir(&self, call: &Block) -> Result<String, String> {
        let name = label(call, 0);
        let source = attribute(call.body(), "source")
            .and_then(literal_str)
            .ok_or_else(|| format!("{}: module {name} has no literal source", self.dir))?;
        Ok(normalize(&format!("{}/{source}", self.dir)))
    }
}

/// Resolves `.` and `..` in a `/`-separated relative path.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// The `index`th label of a block, or "".
pub fn label(block: &Block, index: usize) -> &str {
    block.labels().get(index).map_or("", |label| label.as_str())
}

/// The expression of an attribute of a body.
pub fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|attribute| attribute.key() == key)
        .map(Attribute::expr)
}

/// Nested blocks of a body with this identifier.
pub fn nested<'a>(body: &'a Body, identifier: &str) -> impl Iterator<Item = &'a Block> + use<'a> {
    let identifier = identifier.to_owned();
    body.blocks()
        .filter(move |block| block.identifier() == identifier)
}

/// A literal string expression's value.
pub fn literal_str(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(value) => Some(value),
        _ => None,
    }
}

/// An expression as HCL source text, e.g. `var.routes` or
/// `"integrations/${aws_apigatewayv2_integration.this[each.key].id}"`.
pub fn source(expr: &Expression) -> String {
    expr.to_string()
}
