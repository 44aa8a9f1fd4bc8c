//! The import rule of `src/lib.rs`: a module imports only modules of lower
//! layers. Reads the layer list from lib.rs's doc (so the doc and the rule
//! cannot drift apart) and every `crate::NAME` path outside comments in
//! `src/`; a module missing from the list fails too.

use std::collections::BTreeMap;
use std::path::Path;

/// Module name → layer, from the numbered `//! N. `a`, `b`: ...` lines.
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.strip_prefix("//! ")) {
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        // Only a number right after `//! ` starts an entry (continuation
        // lines are indented).
        let Ok(layer) = number.parse::<usize>() else {
            continue;
        };
        let names = rest.split(':').next().unwrap_or("");
        for name in names.split(',').map(|n| n.trim().trim_matches('`')) {
            out.insert(name.to_string(), layer);
        }
    }
    out
}

/// The modules `crate::` paths name in one line of code.
fn imports(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let preceded_by_word = rest[..i]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !preceded_by_word {
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                out.extend(inner.split(',').map(|p| head(p.trim())));
            } else {
                out.push(head(after));
            }
        }
        rest = after;
    }
    out.retain(|m| !m.is_empty());
    out
}

fn head(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let layer = layers(&lib);
    assert!(layer.len() > 10, "no layer list in src/lib.rs: {layer:?}");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let module = Path::new(first)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&own) = layer.get(&module) else {
            problems.push(format!(
                "{}: module {module} is in no layer of src/lib.rs",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for used in imports(line) {
                if used == module {
                    continue;
                }
                match layer.get(&used) {
                    Some(&l) if l < own => {}
                    Some(&l) => problems.push(format!(
                        "{}:{}: {module} (layer {own}) uses {used} (layer {l}): imports point down",
                        rel.display(),
                        n + 1
                    )),
                    None => problems.push(format!(
                        "{}:{}: {used} is in no layer of src/lib.rs",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reader_sees_what_it_must() {
    let doc = "//! 3. `a`, `b`: things.\n//! 10. `c`: more.\n//!    4. no\n";
    let l = layers(doc);
    assert_eq!(l.get("a"), Some(&3));
    assert_eq!(l.get("b"), Some(&3));
    assert_eq!(l.get("c"), Some(&10));
    assert_eq!(l.len(), 3);
    assert_eq!(imports("use crate::ssh::Session;"), ["ssh"]);
    assert_eq!(imports("use crate::{exit, state::X};"), ["exit", "state"]);
    assert_eq!(imports("labctl_crate::x; crate::verify::run()"), ["verify"]);
}
