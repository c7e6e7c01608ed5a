//! examples/k8s/phase-diagram-job.yaml without Kubernetes: each completion index's container
//! command, taken from the manifest and expanded as the kubelet expands it, runs here on the
//! binary under test with the volume mounted on a temporary directory; the shards are merged
//! with `gradstab sweep merge` and must equal the same sweep run in one piece, point for point,
//! each shard holding exactly its own points.
//!
//! What Kubernetes itself does and this test emulates: the Job controller gives every pod of an
//! Indexed Job its index in JOB_COMPLETION_INDEX (unless the container declares it; then the
//! declaration, which in the manifest reads the same annotation); the kubelet replaces $(NAME)
//! in command and args with the container's variable NAME, $$ with $, and leaves a $(NAME) it
//! cannot resolve as it is.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::cli;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/k8s/phase-diagram-job.yaml"
);
const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";
const INDEX_FIELD: &str = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
/// The fields of a sweep's line that must agree between the sharded and the whole run; the
/// others ("seconds" and other timings) differ from run to run.
const COMPARED: [&str; 7] = [
    "sweep", "of", "point", "command", "flags", "config", "outcome",
];
/// Variables through which a scheduler hands out shards: the test process may have inherited
/// them (run inside a Slurm job, say), and then they would choose the shard instead of the
/// manifest.
const SCHEDULER_VARS: [&str; 5] = [
    INDEX_VAR,
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
];

/// What one pod of the Job runs.
struct Pod {
    completions: usize,
    command: Vec<String>,
    args: Vec<String>,
    /// The container's variables in order; `None` for the one read from the completion-index
    /// annotation.
    env: Vec<(String, Option<String>)>,
    /// (mountPath, volume name) of each volume mount.
    mounts: Vec<(String, String)>,
}

fn strings(yaml: &Yaml, what: &str) -> Vec<String> {
    match yaml {
        Yaml::BadValue => Vec::new(),
        _ => yaml
            .as_vec()
            .unwrap_or_else(|| panic!("{what} is a list"))
            .iter()
            .map(|s| match s {
                Yaml::String(s) => s.clone(),
                other => panic!("{what}: {other:?} is not a string (Kubernetes wants strings)"),
            })
            .collect(),
    }
}

fn read_manifest() -> Pod {
    let text = std::fs::read_to_string(MANIFEST).expect("the manifest reads");
    let documents = YamlLoader::load_from_str(&text).expect("the manifest is YAML");
    let jobs: Vec<&Yaml> = documents
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Job"))
        .collect();
    assert_eq!(jobs.len(), 1, "one Job in {MANIFEST}");
    let job = jobs[0];
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    let spec = &job["spec"];
    assert_eq!(
        spec["completionMode"].as_str(),
        Some("Indexed"),
        "an Indexed Job"
    );
    let completions = spec["completions"].as_i64().expect("completions") as usize;
    let parallelism = spec["parallelism"].as_i64().expect("parallelism") as usize;
    assert!((1..=completions).contains(&parallelism));

    let pod = &spec["template"]["spec"];
    let containers = pod["containers"].as_vec().expect("containers");
    assert_eq!(containers.len(), 1, "one container: the sweep");
    let container = &containers[0];

    let env = match container["env"].as_vec() {
        None => Vec::new(),
        Some(vars) => vars
            .iter()
            .map(|var| {
                let name = var["name"].as_str().expect("env name").to_string();
                let value = match (
                    var["value"].as_str(),
                    var["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
                ) {
                    (Some(value), None) => Some(value.to_string()),
                    (None, Some(INDEX_FIELD)) => None,
                    _ => panic!(
                        "env {name}: only literal values and the completion index are emulated"
                    ),
                };
                (name, value)
            })
            .collect(),
    };

    // Each mount must name a volume of the pod; every volume is a directory shared by the pods.
    let volumes: BTreeSet<&str> = pod["volumes"]
        .as_vec()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    let mounts = container["volumeMounts"]
        .as_vec()
        .map(|mounts| {
            mounts
                .iter()
                .map(|m| {
                    let name = m["name"].as_str().expect("mount name");
                    assert!(volumes.contains(name), "volume {name} is declared");
                    (
                        m["mountPath"].as_str().expect("mountPath").to_string(),
                        name.to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();

    Pod {
        completions,
        command: strings(&container["command"], "command"),
        args: strings(&container["args"], "args"),
        env,
        mounts,
    }
}

/// The kubelet's expansion of command and args (Kubernetes' third_party/forked/golang/expansion):
/// $(NAME) becomes NAME's value when the container has NAME, else stays as written; $$ becomes $;
/// any other $ is kept.
fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after_escape) = after.strip_prefix('$') {
            out.push('$');
            rest = after_escape;
        } else if let (Some(inner), Some(close)) = (after.strip_prefix('('), after.find(')')) {
            let name = &inner[..close - 1];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[at..at + 2 + close]),
            }
            rest = &after[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn kubelet_expansion() {
    let vars = BTreeMap::from([("I".to_string(), "3".to_string())]);
    assert_eq!(expand("/r/shard-$(I).jsonl", &vars), "/r/shard-3.jsonl");
    assert_eq!(expand("$$(I) $(J) $x $", &vars), "$(I) $(J) $x $");
    assert_eq!(expand("$(I)$(I)", &vars), "33");
}

/// The container's variables in pod `index`: its declared ones, and the completion index,
/// which the Job controller adds when the container does not declare it.
fn pod_env(pod: &Pod, index: usize) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for (name, value) in &pod.env {
        let value = match value {
            // A literal value may refer to the variables declared before it.
            Some(literal) => expand(literal, &vars),
            None => index.to_string(),
        };
        vars.insert(name.clone(), value);
    }
    vars.entry(INDEX_VAR.to_string())
        .or_insert_with(|| index.to_string());
    vars
}

/// `args` with every path under a mount moved under `root`/VOLUME.
fn remount(args: &[String], pod: &Pod, root: &Path) -> Vec<String> {
    args.iter()
        .map(|arg| {
            for (mount_path, volume) in &pod.mounts {
                if let Some(rest) = arg.strip_prefix(&format!("{mount_path}/")) {
                    return root.join(volume).join(rest).to_string_lossy().into_owned();
                }
            }
            arg.clone()
        })
        .collect()
}

/// The value of `--NAME VALUE` or `--NAME=VALUE` in `args` (before any `--`).
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    let sweep_args = args.iter().take_while(|a| a.as_str() != "--");
    let mut it = sweep_args.clone();
    while let Some(arg) = it.next() {
        if *arg == long {
            return it.next().map(String::as_str);
        }
        if let Some(value) = arg.strip_prefix(&format!("{long}=")) {
            return Some(value);
        }
    }
    None
}

/// `args` without `--NAME VALUE` / `--NAME=VALUE` (before any `--`).
fn without_flag(args: &[String], name: &str) -> Vec<String> {
    let long = format!("--{name}");
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.push(arg.clone());
            out.extend(it.cloned());
            break;
        }
        if *arg == long {
            it.next();
        } else if !arg.starts_with(&format!("{long}=")) {
            out.push(arg.clone());
        }
    }
    out
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

fn index_of(line: &Value) -> usize {
    line["index"].as_u64().expect("an index") as usize
}

fn assert_ran(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn indexed_job_shards_merge_to_the_whole_sweep() {
    let pod = read_manifest();
    assert_eq!(
        pod.command,
        ["gradstab"],
        "the container runs gradstab itself, no shell"
    );
    let shards: usize = flag(&pod.args, "shards")
        .expect("--shards in the container's args")
        .parse()
        .expect("--shards is a number");
    assert_eq!(
        shards, pod.completions,
        "--shards must equal the Job's completions"
    );

    let root: PathBuf = std::env::temp_dir().join(format!("gradstab-k8s-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (_, volume) in &pod.mounts {
        std::fs::create_dir_all(root.join(volume)).unwrap();
    }

    // One pod per completion index, each run to the end (the Job's parallelism changes when
    // they run, not what they write).
    let mut shard_files = Vec::new();
    for index in 0..pod.completions {
        let vars = pod_env(&pod, index);
        let args: Vec<String> = pod.args.iter().map(|a| expand(a, &vars)).collect();
        let args = remount(&args, &pod, &root);
        let out = PathBuf::from(flag(&args, "out").expect("--out in the container's args"));
        assert!(
            out.starts_with(&root),
            "pod {index} writes {} on a shared volume",
            out.display()
        );
        assert!(
            !shard_files.contains(&out),
            "pod {index} writes {}, as an earlier pod does",
            out.display()
        );
        let mut run = cli(&args);
        for var in SCHEDULER_VARS {
            run = run.env_remove(var);
        }
        for (name, value) in &vars {
            run = run.env(name, value);
        }
        assert_ran(
            run.output(),
            &format!("pod {index}: gradstab {}", args.join(" ")),
        );
        shard_files.push(out);
    }

    let merged = root.join("merged.jsonl");
    assert_ran(
        cli(["sweep", "merge"])
            .args(&shard_files)
            .arg("--out")
            .arg(&merged)
            .output(),
        "gradstab sweep merge",
    );

    // The same sweep in one piece: the pod's arguments less the shard count, to another file,
    // with the pod's variables less the index.
    let whole = root.join("whole.jsonl");
    let mut args = without_flag(&without_flag(&pod.args, "out"), "shards");
    assert_eq!(args[0], "sweep", "the container runs `gradstab sweep`");
    args.splice(
        1..1,
        ["--out".to_string(), whole.to_string_lossy().into_owned()],
    );
    let mut run = cli(&args);
    for var in SCHEDULER_VARS {
        run = run.env_remove(var);
    }
    for (name, value) in pod_env(&pod, 0) {
        if name != INDEX_VAR {
            run = run.env(name, value);
        }
    }
    assert_ran(
        run.output(),
        &format!("the whole sweep: gradstab {}", args.join(" ")),
    );

    let whole = lines(&whole);
    let merged = lines(&merged);
    assert!(!whole.is_empty(), "the sweep has points");
    let total = whole.len();
    assert_eq!(
        whole[0]["of"].as_u64(),
        Some(total as u64),
        "the whole sweep wrote all its points"
    );

    let merged_indices: Vec<usize> = merged.iter().map(index_of).collect();
    assert_eq!(
        merged_indices,
        (0..total).collect::<Vec<_>>(),
        "the merge holds each point once, sorted"
    );
    let whole_by_index: BTreeMap<usize, &Value> = whole.iter().map(|l| (index_of(l), l)).collect();
    assert_eq!(
        whole_by_index.len(),
        total,
        "the whole sweep wrote each point once"
    );
    for line in &merged {
        let i = index_of(line);
        for field in COMPARED {
            assert_eq!(
                line[field], whole_by_index[&i][field],
                "point {i}: {field}, sharded against whole"
            );
        }
    }

    for (shard, file) in shard_files.iter().enumerate() {
        let mut got: Vec<usize> = lines(file).iter().map(index_of).collect();
        got.sort_unstable();
        let want: Vec<usize> = (shard..total).step_by(shards).collect();
        assert_eq!(
            got,
            want,
            "pod {shard} ({}) holds exactly its shard's points",
            file.display()
        );
    }

    std::fs::remove_dir_all(&root).unwrap();
}
