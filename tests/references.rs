//! Every file the project's documents and source cite exists in the repository: the README,
//! BENCHMARKS.md, docs/, the source and the shaders name only files a user who cloned the
//! repository can open.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, extensions, out);
        } else if path
            .extension()
            .is_some_and(|e| extensions.iter().any(|x| e == *x))
        {
            out.push(path);
        }
    }
}

/// Path-like words of `text` that name a file or folder of this repository: anything under
/// src/, docs/, shaders/, tests/, examples/, benches/, tools/ or .ci/, and any `NAME.md`.
fn cited_paths(text: &str) -> Vec<String> {
    let mut cited = Vec::new();
    let is_path_char = |c: char| c.is_alphanumeric() || "_./<>-".contains(c);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_path_char(chars[i - 1]);
        if !starts_word || !is_path_char(chars[i]) {
            i += 1;
            continue;
        }
        let word: String = chars[i..]
            .iter()
            .take_while(|c| is_path_char(**c))
            .collect();
        i += word.chars().count();
        let word = word.trim_end_matches(['.', '-']).to_string();
        // A template such as src/ops/<family>/ names no single file.
        if word.contains('<') || word.contains("...") {
            continue;
        }
        let under_root = [
            "src/",
            "docs/",
            "shaders/",
            "tests/",
            "examples/",
            "benches/",
            "tools/",
            ".ci/",
        ]
        .iter()
        .any(|p| word.starts_with(p));
        let markdown = word.ends_with(".md") && !word.contains('/');
        if under_root || markdown {
            cited.push(word);
        }
    }
    cited
}

#[test]
fn every_cited_file_exists() {
    let root = root();
    let mut sources = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    files_under(&root.join("docs"), &["md"], &mut sources);
    files_under(&root.join("src"), &["rs"], &mut sources);
    files_under(&root.join("shaders"), &["wgsl"], &mut sources);
    let mut missing = Vec::new();
    for source in &sources {
        let text = std::fs::read_to_string(source).unwrap();
        for cited in cited_paths(&text) {
            let exists = root.join(&cited).exists() || root.join("docs").join(&cited).exists();
            if !exists {
                missing.push(format!(
                    "{} cites {cited}",
                    source.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(missing.is_empty(), "missing files:\n{}", missing.join("\n"));
}

#[test]
fn the_scanner_finds_paths_in_prose_and_links() {
    let found = cited_paths(
        "see [the design](docs/design.md), `src/ops/matmul/mod.rs`. Also THEORY.md §7 and \
         src/ops/<family>/ but not wgpu/src or version 1.2.md-ish",
    );
    assert_eq!(
        found,
        ["docs/design.md", "src/ops/matmul/mod.rs", "THEORY.md"],
        "{found:?}"
    );
}
