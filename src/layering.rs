//! The layering of `ARCHITECTURE.md`, checked: which top-level module may name which, that
//! the modules form no cycle, that only `store::rocks` names RocksDB and only `http` names
//! actix, that each module has one error type, and that no source file is over 600 lines of
//! code. It reads the sources as text
//! (every `crate::module` path outside comments and test modules), so a wrong import fails
//! this test the moment it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who may name whom (besides itself). `cli` and `main` are the top and may name anything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("http", &["service", "domain", "metrics"]),
    ("service", &["ledger", "projection", "format", "log", "tokens", "signing", "domain", "canonical", "metrics"]),
    ("audit", &["format", "log", "signing", "canonical", "domain"]),
    (
        "ledger",
        &["projection", "store", "format", "log", "signing", "secrets", "tokens", "canonical", "domain", "metrics"],
    ),
    ("projection", &["store", "format", "domain"]),
    ("format", &["canonical", "signing", "domain"]),
    ("log", &["signing", "canonical"]),
    ("tokens", &["domain", "signing"]),
    ("secrets", &["domain", "signing"]),
    ("signing", &[]),
    ("canonical", &[]),
    ("store", &[]),
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

/// The top-level module a file belongs to (`src/http/routes/x.rs` -> `http`).
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).expect("under src");
    let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a line names through `crate::`.
fn named_modules(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .filter(|(i, _)| !line[..*i].ends_with("consent_"))
        .map(|(i, m)| line[i + m.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .filter(|m: &String| !m.is_empty())
        .collect()
}

struct Tree {
    /// module -> modules it names, with a file that does.
    edges: BTreeMap<String, BTreeMap<String, PathBuf>>,
    files: Vec<(PathBuf, String)>,
}

fn read_tree() -> Tree {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    let mut texts = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        let module = module_of(&root, &f);
        for line in code_lines(&text) {
            for named in named_modules(line) {
                if named != module {
                    edges.entry(module.clone()).or_default().entry(named).or_insert_with(|| f.clone());
                }
            }
        }
        texts.push((f, text));
    }
    Tree { edges, files: texts }
}

#[test]
fn every_module_names_only_the_layers_it_may() {
    let tree = read_tree();
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(m, deps)| (*m, deps.iter().copied().collect())).collect();
    let mut wrong = Vec::new();
    for (module, named) in &tree.edges {
        if matches!(module.as_str(), "cli" | "main" | "lib" | "layering") {
            continue;
        }
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!("{module} is not in the layering table of src/layering.rs"));
            continue;
        };
        for (dep, file) in named {
            if !may.contains(dep.as_str()) {
                wrong.push(format!("{module} names {dep} ({})", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against ARCHITECTURE.md:\n{}", wrong.join("\n"));
}

#[test]
fn the_modules_form_no_cycle() {
    let tree = read_tree();
    // Depth-first search for a back edge.
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<String, BTreeMap<String, PathBuf>>,
        state: &mut BTreeMap<&'a str, bool>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(true) => return None,
            Some(false) => {
                let from = path.iter().position(|p| *p == m).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                cycle.push(m.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(m, false);
        path.push(m);
        for dep in edges.get(m).map(|d| d.keys()).into_iter().flatten() {
            if let Some(c) = visit(dep, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(m, true);
        None
    }
    let mut state = BTreeMap::new();
    for m in tree.edges.keys() {
        if let Some(cycle) = visit(m, &tree.edges, &mut state, &mut Vec::new()) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn only_the_rocksdb_engine_names_rocksdb_and_only_http_names_actix() {
    let tree = read_tree();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
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
fn the_table_catches_a_wrong_import() {
    // The parser sees what a wrong import would look like.
    assert_eq!(named_modules("use crate::store::{Cf, Store};"), vec!["store"]);
    assert_eq!(named_modules("let x = crate::ledger::log_size(&s); // crate::http"), vec!["ledger", "http"]);
    assert!(named_modules("use consent_ledger::store::Store;").is_empty());
    assert_eq!(
        code_lines("// use crate::store;\nfn a() {}\n#[cfg(test)]\nmod tests {\n use crate::x;\n}"),
        vec!["fn a() {}"]
    );
}
