//! The source tree's dependencies run one way: no file under `src/` imports a file that
//! imports it back, directly or through others.
//!
//! An import is any path a file names that resolves to another file of the same crate: a
//! `use` of `crate::…`, `super::…`, `self::…` or a child module, or such a path written
//! inline in code (`crate::gpu::probe::probe(…)`). A `mod` declaration is not an import, but a
//! `pub use` re-export is. The library (`src/lib.rs`) and the binary (`src/main.rs` with
//! `src/cli/`) are checked as the two crates they are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file, its crate and its module path (`["ops", "matmul"]` for `src/ops/matmul/mod.rs`).
#[derive(Clone, Debug)]
struct SourceFile {
    path: String,
    binary: bool,
    module: Vec<String>,
    text: String,
}

fn source_files() -> Vec<SourceFile> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(String::from)
                .collect();
            let last = module.last().unwrap().as_str();
            if matches!(last, "mod" | "lib" | "main") {
                module.pop();
            }
            SourceFile {
                binary: rel == "main.rs" || rel.starts_with("cli/"),
                path: format!("src/{rel}"),
                module,
                text: strip_comments_and_literals(&std::fs::read_to_string(&p).unwrap()),
            }
        })
        .collect()
}

/// The code alone: comments, string and character literals become spaces, so neither a path
/// in a doc comment nor a brace in a format string is mistaken for code.
fn strip_comments_and_literals(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c[i] == 'r'
            && (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime ('a), which stays.
            let close = if c.get(i + 1) == Some(&'\\') {
                (i + 2..c.len().min(i + 12)).find(|&j| c[j] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(j) => {
                    out.push_str("' '");
                    i = j + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Expands a `use` tree (`a::{b, c::{d, self}}`) into full paths, each a list of segments.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    fn split_top(s: &str) -> Vec<&str> {
        let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
        for (i, ch) in s.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts
    }
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    if tree.is_empty() {
        return vec![];
    }
    if let Some(open) = tree.find('{') {
        let prefix: Vec<String> = tree[..open]
            .trim_end_matches("::")
            .split("::")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let mut out = Vec::new();
        for part in split_top(inner) {
            for tail in expand_use_tree(part) {
                let mut path = prefix.clone();
                if tail != ["self"] {
                    path.extend(tail);
                }
                out.push(path);
            }
        }
        return out;
    }
    let no_alias = tree.split(" as ").next().unwrap();
    vec![no_alias
        .split("::")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()]
}

struct Crate<'a> {
    /// module path → index of its file
    modules: BTreeMap<Vec<String>, usize>,
    files: &'a [SourceFile],
}

impl Crate<'_> {
    /// The file a path resolves to, given the module it is written in: the longest prefix
    /// of the absolute path that names a module.
    fn resolve(
        &self,
        current: &[String],
        path: &[String],
        aliases: &BTreeMap<String, Vec<String>>,
    ) -> Option<usize> {
        let first = path.first()?.as_str();
        let mut absolute: Vec<String> = match first {
            "crate" => path[1..].to_vec(),
            "self" => [current, &path[1..]].concat(),
            "super" => {
                let mut base = current.to_vec();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
                [base.as_slice(), rest].concat()
            }
            name => {
                let child = [current, &[name.to_string()]].concat();
                if self.modules.contains_key(&child) {
                    [current, path].concat()
                } else if let Some(target) = aliases.get(name) {
                    [target.as_slice(), &path[1..]].concat()
                } else {
                    return None;
                }
            }
        };
        while !self.modules.contains_key(&absolute) {
            absolute.pop();
        }
        self.modules.get(&absolute).copied()
    }
}

/// Every file each file imports, as indices into `files`.
fn import_graph(files: &[SourceFile], binary: bool) -> BTreeMap<usize, BTreeSet<usize>> {
    let krate = Crate {
        modules: files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.binary == binary)
            .map(|(i, f)| (f.module.clone(), i))
            .collect(),
        files,
    };
    let mut graph = BTreeMap::new();
    for (index, file) in files.iter().enumerate().filter(|(_, f)| f.binary == binary) {
        let mut edges = BTreeSet::new();
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Inline `mod name { … }` blocks shift what `super` and `self` mean inside them.
        let text = &file.text;
        let chars: Vec<char> = text.chars().collect();
        let mut inline_modules: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < chars.len() {
            let at_word = i == 0 || !is_ident(chars[i - 1]);
            let rest: String = chars[i..chars.len().min(i + 64)].iter().collect();
            let current: Vec<String> = file
                .module
                .iter()
                .cloned()
                .chain(inline_modules.iter().map(|(n, _)| n.clone()))
                .collect();
            if chars[i] == '{' {
                depth += 1;
            } else if chars[i] == '}' {
                depth -= 1;
                if inline_modules.last().is_some_and(|(_, d)| *d == depth) {
                    inline_modules.pop();
                }
            }
            if at_word && rest.starts_with("mod ") {
                let after: String = chars[i + 4..]
                    .iter()
                    .take_while(|c| **c != ';' && **c != '{')
                    .collect();
                let end = i + 4 + after.chars().count();
                if chars.get(end) == Some(&'{') {
                    inline_modules.push((after.trim().to_string(), depth));
                    depth += 1;
                    i = end + 1;
                    continue;
                }
            }
            if at_word && rest.starts_with("use ") {
                let end = (i..chars.len()).find(|&j| chars[j] == ';').unwrap();
                let tree: String = chars[i + 4..end].iter().collect();
                for path in expand_use_tree(&tree) {
                    if let Some(target) = krate.resolve(&current, &path, &aliases) {
                        edges.insert(target);
                        // `use crate::ops::activation;` lets `activation::gpu::…` follow.
                        if krate.files[target].module.last() == path.last() {
                            aliases.insert(
                                path.last().unwrap().clone(),
                                krate.files[target].module.clone(),
                            );
                        }
                    }
                }
                i = end + 1;
                continue;
            }
            if at_word && is_ident(chars[i]) {
                let path_text: String = chars[i..]
                    .iter()
                    .take_while(|c| is_ident(**c) || **c == ':')
                    .collect();
                let len = path_text.chars().count();
                if path_text.contains("::") {
                    let path: Vec<String> = path_text
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    if let Some(target) = krate.resolve(&current, &path, &aliases) {
                        edges.insert(target);
                    }
                }
                i += len.max(1);
                continue;
            }
            i += 1;
        }
        edges.remove(&index);
        graph.insert(index, edges);
    }
    graph
}

/// A cycle in the graph, as file indices, if there is one.
fn find_cycle(graph: &BTreeMap<usize, BTreeSet<usize>>) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        n: usize,
        graph: &BTreeMap<usize, BTreeSet<usize>>,
        marks: &mut BTreeMap<usize, Mark>,
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks.insert(n, Mark::Open);
        stack.push(n);
        for &m in graph.get(&n).into_iter().flatten() {
            match marks.get(&m).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = stack.iter().position(|&x| x == m).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(m);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(m, graph, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(n, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for &n in graph.keys() {
        if marks.get(&n).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(n, graph, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// The groups of two or more files that all reach each other (for the failure message).
fn tangled_groups(graph: &BTreeMap<usize, BTreeSet<usize>>) -> Vec<BTreeSet<usize>> {
    let reach = |from: usize| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            for &m in graph.get(&n).into_iter().flatten() {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<usize, BTreeSet<usize>> = graph.keys().map(|&n| (n, reach(n))).collect();
    let mut groups: Vec<BTreeSet<usize>> = Vec::new();
    for &n in graph.keys() {
        if groups.iter().any(|g| g.contains(&n)) {
            continue;
        }
        let group: BTreeSet<usize> = graph
            .keys()
            .copied()
            .filter(|&m| m == n || (reaches[&n].contains(&m) && reaches[&m].contains(&n)))
            .collect();
        if group.len() > 1 {
            groups.push(group);
        }
    }
    groups
}

#[test]
fn no_source_file_imports_a_file_that_imports_it_back() {
    let files = source_files();
    for binary in [false, true] {
        let graph = import_graph(&files, binary);
        if let Some(cycle) = find_cycle(&graph) {
            let names: Vec<&str> = cycle.iter().map(|&i| files[i].path.as_str()).collect();
            let tangles: Vec<String> = tangled_groups(&graph)
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|&i| files[i].path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            panic!(
                "import cycle: {}\nfiles that reach each other:\n  {}",
                names.join(" → "),
                tangles.join("\n  ")
            );
        }
    }
}

#[test]
fn the_checker_sees_use_trees_inline_paths_and_re_exports() {
    // The checker itself must find what it is meant to find, or the test above proves nothing.
    let file = |path: &str, module: &[&str], text: &str| SourceFile {
        path: path.into(),
        binary: false,
        module: module.iter().map(|s| s.to_string()).collect(),
        text: strip_comments_and_literals(text),
    };
    let files = vec![
        file("src/lib.rs", &[], "pub mod a; pub mod b; pub use a::Thing;"),
        file(
            "src/a/mod.rs",
            &["a"],
            "pub mod x; use crate::b::{self, Other};",
        ),
        file(
            "src/a/x.rs",
            &["a", "x"],
            "fn f() { let s = \"crate::b::Q\"; super::super::b::g(); }",
        ),
        file(
            "src/b.rs",
            &["b"],
            "// crate::a\nfn g() { crate::a::x::f(); }\nmod tests { use super::*; }",
        ),
    ];
    let graph = import_graph(&files, false);
    assert_eq!(graph[&0], BTreeSet::from([1]), "lib re-exports a");
    assert_eq!(
        graph[&1],
        BTreeSet::from([3]),
        "a uses b through a use tree"
    );
    assert_eq!(
        graph[&2],
        BTreeSet::from([3]),
        "x calls b inline; the string is ignored"
    );
    assert_eq!(
        graph[&3],
        BTreeSet::from([2]),
        "b calls a::x; comment and inline test module ignored"
    );
    let cycle = find_cycle(&graph).expect("x → b → x");
    assert!(cycle.contains(&2) && cycle.contains(&3));
}
