//! The layering of `ARCHITECTURE.md`, checked. Each layer is a crate of the workspace
//! (`src/<layer>/Cargo.toml`), so a wrong import does not compile: a crate can name only the
//! crates its manifest lists, and cargo refuses a cycle between crates. These tests tie the
//! manifests to the table below (a crate lists only the layers it may name, and every layer
//! under `src/` is a crate in the table), check that only the store's RocksDB engine names
//! `rocksdb` and only `http` depends on actix, that each layer has one error type, and that no
//! source file is over 600 lines of code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who may name whom (besides itself). The root package (`cli`, `main`) is the top and may
/// name anything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("http", &["service", "domain", "metrics"]),
    ("service", &["ledger", "projection", "format", "log", "tokens", "signing", "domain", "canonical", "metrics"]),
    ("audit", &["format", "log", "signing", "canonical", "domain"]),
    (
        "ledger",
        &[
            "projection",
            "store",
            "pglog",
            "format",
            "log",
            "signing",
            "secrets",
            "tokens",
            "canonical",
            "domain",
            "metrics",
        ],
    ),
    ("projection", &["store", "format", "domain", "metrics"]),
    ("format", &["canonical", "signing", "domain"]),
    ("log", &["signing", "canonical"]),
    ("tokens", &["domain", "signing"]),
    ("secrets", &["domain", "signing"]),
    ("signing", &[]),
    ("canonical", &[]),
    ("store", &[]),
    ("pglog", &[]),
    ("metrics", &[]),
    ("domain", &[]),
];

/// Most lines of code (not blank, not comments, not the test module) in one source file.
const MAX_LINES_OF_CODE: usize = 600;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code lines, without comments and without a trailing `#[cfg(test)]` module.
fn code_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut it = text.lines().peekable();
    while let Some(line) = it.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" && it.peek().is_some_and(|n| n.trim_start().starts_with("mod ")) {
            break;
        }
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        lines.push(line);
    }
    lines
}

/// The layer a file belongs to (`src/http/routes/x.rs` -> `http`; `src/lib.rs` -> `lib`).
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).expect("under src");
    let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The names in one `[section]` of a manifest (`name.workspace = true` or `name = ...`).
fn manifest_section(manifest: &str, section: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == format!("[{section}]");
            continue;
        }
        if inside && !t.is_empty() && !t.starts_with('#') {
            let name = t.split(['.', '=', ' ']).next().unwrap_or_default();
            names.insert(name.to_owned());
        }
    }
    names
}

/// Every layer's manifest: layer -> (its dependencies, its dev-dependencies).
fn manifests() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src()).expect("read src") {
        let path = entry.expect("entry").path();
        let manifest = path.join("Cargo.toml");
        if path.is_dir() && manifest.exists() {
            let text = std::fs::read_to_string(&manifest).expect("read manifest");
            let name = path.file_name().expect("a name").to_string_lossy().into_owned();
            out.insert(name, (manifest_section(&text, "dependencies"), manifest_section(&text, "dev-dependencies")));
        }
    }
    out
}

fn layers() -> BTreeSet<&'static str> {
    ALLOWED.iter().map(|(m, _)| *m).collect()
}

struct Tree {
    files: Vec<(PathBuf, String)>,
}

fn read_tree() -> Tree {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    files.sort();
    let files = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read source");
            (f, text)
        })
        .collect();
    Tree { files }
}

#[test]
fn every_layer_is_a_crate_that_depends_only_on_the_layers_it_may() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(m, deps)| (*m, deps.iter().copied().collect())).collect();
    let manifests = manifests();
    let mut wrong = Vec::new();
    for layer in layers() {
        if !manifests.contains_key(layer) {
            wrong.push(format!("{layer} has no src/{layer}/Cargo.toml"));
        }
    }
    for (layer, (deps, _)) in &manifests {
        let Some(may) = allowed.get(layer.as_str()) else {
            wrong.push(format!("src/{layer} is a crate not in the layering table of src/layering.rs"));
            continue;
        };
        for dep in deps.iter().filter(|d| layers().contains(d.as_str())) {
            if !may.contains(dep.as_str()) {
                wrong.push(format!("src/{layer}/Cargo.toml depends on {dep}"));
            }
        }
    }
    // What is not a crate is the root package's own: the command line, `main`, `lib`, this test;
    // and `proptest-regressions`, where proptest keeps the failing cases of the layers' property
    // tests (beside `src/`'s sources, to be committed and run again).
    for entry in std::fs::read_dir(src()).expect("read src") {
        let path = entry.expect("entry").path();
        let name = module_of(&src(), &path);
        let own = matches!(name.as_str(), "cli" | "main" | "lib" | "layering" | "proptest-regressions");
        if !manifests.contains_key(&name) && !own {
            wrong.push(format!("src/{name} is neither a layer's crate nor the root package's"));
        }
    }
    assert!(wrong.is_empty(), "dependencies against ARCHITECTURE.md:\n{}", wrong.join("\n"));
}

#[test]
fn the_workspace_lists_every_layer() {
    let root = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("manifest");
    for layer in layers() {
        assert!(root.contains(&format!("\"src/{layer}\"")), "{layer} is not a workspace member");
    }
}

#[test]
fn only_the_rocksdb_engine_names_rocksdb_and_only_http_names_actix() {
    for (layer, (deps, _)) in manifests() {
        assert!(layer == "store" || !deps.contains("rocksdb"), "src/{layer} depends on rocksdb");
        assert!(layer == "http" || !deps.contains("actix-web"), "src/{layer} depends on actix-web");
    }
    let tree = read_tree();
    let root = src();
    for (file, text) in &tree.files {
        let rel = file.strip_prefix(&root).expect("under src").to_string_lossy().replace('\\', "/");
        let code = code_lines(text).join("\n");
        if rel == "layering.rs" {
            continue; // this file names both in its checks
        }
        if rel != "store/rocks.rs" {
            assert!(!code.contains("rocksdb::"), "{rel} names rocksdb");
        }
        if !rel.starts_with("http/") {
            assert!(!code.contains("actix"), "{rel} names actix");
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines_of_code() {
    let tree = read_tree();
    let long: Vec<String> = tree
        .files
        .iter()
        .map(|(f, text)| (f, code_lines(text).len()))
        .filter(|(_, n)| *n > MAX_LINES_OF_CODE)
        .map(|(f, n)| format!("{}: {n}", f.display()))
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES_OF_CODE} lines of code:\n{}", long.join("\n"));
}

#[test]
fn each_module_has_one_error_type() {
    let tree = read_tree();
    let root = src();
    let mut by_module: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (file, text) in &tree.files {
        for line in code_lines(text) {
            let t = line.trim_start();
            let decl = t
                .strip_prefix("pub enum ")
                .or_else(|| t.strip_prefix("pub struct "))
                .or_else(|| t.strip_prefix("enum "));
            let Some(name) =
                decl.map(|d| d.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or_default())
            else {
                continue;
            };
            if name.ends_with("Error") {
                by_module.entry(module_of(&root, file)).or_default().push(name.to_owned());
            }
        }
    }
    let many: Vec<String> = by_module
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(m, names)| format!("{m}: {}", names.join(", ")))
        .collect();
    assert!(many.is_empty(), "modules with more than one error type:\n{}", many.join("\n"));
}

#[test]
fn the_manifest_reader_sees_dependencies() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nstore.workspace = true\nserde = { version = \"1\" }\n# a comment\n\n[dev-dependencies]\nproptest.workspace = true\n";
    assert_eq!(manifest_section(manifest, "dependencies"), BTreeSet::from(["serde".to_owned(), "store".to_owned()]));
    assert_eq!(manifest_section(manifest, "dev-dependencies"), BTreeSet::from(["proptest".to_owned()]));
    assert_eq!(
        code_lines("// use crate::store;\nfn a() {}\n#[cfg(test)]\nmod tests {\n use crate::x;\n}"),
        vec!["fn a() {}"]
    );
}
