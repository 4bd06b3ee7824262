//! Malformed files each get one clean, specific problem and never a panic.

use mission_core::registry::manifest::{ManifestInput, MAX_DEPTH};
use mission_core::registry::validate::validate;
use mission_core::registry::ProblemCode;
use mission_core::Catalog;

fn code_of(bytes: Vec<u8>) -> (ProblemCode, String) {
    let catalog = Catalog::bundled().expect("catalog");
    let v = validate(&[ManifestInput::new("bad.json", bytes)], &catalog);
    assert_eq!(v.problems.len(), 1, "{:#?}", v.problems);
    assert!(v.templates.is_empty());
    let p = &v.problems[0];
    assert_eq!(p.file, "bad.json");
    (p.code, p.message.clone())
}

#[test]
fn oversized_file() {
    let limit = Catalog::bundled()
        .expect("catalog")
        .policy()
        .import
        .max_file_bytes as usize;
    let mut bytes = b"{\"manifest_version\":1,\"templates\":[],\"description\":\"".to_vec();
    bytes.resize(limit + 10, b'a');
    let (code, msg) = code_of(bytes);
    assert_eq!(code, ProblemCode::FileTooLarge);
    assert!(msg.contains("MiB"));
}

#[test]
fn oversized_file_is_not_read_whole_from_disk() {
    let limit = 1024;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("big.json");
    std::fs::write(&path, vec![b' '; 10 * limit]).expect("write");
    let input = ManifestInput::read(&path, limit as u64).expect("read");
    assert_eq!(input.bytes.len(), limit + 1);
}

#[test]
fn missing_file_is_a_problem_not_a_crash() {
    let p = ManifestInput::read(std::path::Path::new("/nonexistent/manifest.json"), 1024)
        .expect_err("missing");
    assert_eq!(p.code, ProblemCode::Unreadable);
}

#[test]
fn excessive_nesting() {
    let depth = MAX_DEPTH + 5;
    let text = format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(code_of(text.into_bytes()).0, ProblemCode::TooDeep);
}

#[test]
fn brackets_inside_strings_do_not_count_as_nesting() {
    let t = crate::helpers::template(
        "talent.brackets",
        "Brackets",
        "A manifest whose description is full of brackets.",
    );
    let mut m = crate::helpers::manifest(vec![t]);
    m["description"] = serde_json::json!("[{\\\"".repeat(100));
    let catalog = Catalog::bundled().expect("catalog");
    let v = validate(&[crate::helpers::input("brackets.json", &m)], &catalog);
    assert!(v.problems.is_empty(), "{:#?}", v.problems);
    // Nesting after a string that ends in escapes is still counted.
    let deep = format!(
        "{{\"a\": \"x\\\\\\\"y\\\\\", \"b\": {}{}}}",
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(code_of(deep.into_bytes()).0, ProblemCode::TooDeep);
}

#[test]
fn invalid_utf8() {
    let (code, msg) = code_of(b"{\"manifest_version\":1,\"x\":\"\xff\xfe\"}".to_vec());
    assert_eq!(code, ProblemCode::NotUtf8);
    assert!(msg.contains("offset 27"), "{msg}");
}

#[test]
fn byte_order_mark() {
    assert_eq!(
        code_of(b"\xEF\xBB\xBF{}".to_vec()).0,
        ProblemCode::ByteOrderMark
    );
}

#[test]
fn truncated_json() {
    let full = br#"{"manifest_version": 1, "templates": [{"id": "talent.x", "name": "X""#.to_vec();
    let (code, msg) = code_of(full);
    assert_eq!(code, ProblemCode::Syntax);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn top_level_array() {
    let (code, msg) = code_of(b"[{\"id\": \"talent.x\"}]".to_vec());
    assert_eq!(code, ProblemCode::NotAnObject);
    assert!(msg.contains("array"), "{msg}");
}

#[test]
fn empty_file() {
    assert_eq!(code_of(b"  \n".to_vec()).0, ProblemCode::Empty);
}

#[test]
fn huge_numbers() {
    let (code, msg) = code_of(b"{\"manifest_version\": 1e999, \"templates\": []}".to_vec());
    assert_eq!(code, ProblemCode::Syntax);
    assert!(msg.contains("too large"), "{msg}");
    // A huge integer that does parse is stopped by the schema's limits, not by a panic.
    let mut t = crate::helpers::template(
        "talent.big",
        "Big",
        "A template whose budget is absurdly large.",
    );
    t["default_perimeter"]["budget_cents"] = serde_json::json!(1e300);
    let catalog = Catalog::bundled().expect("catalog");
    let v = validate(
        &[crate::helpers::input(
            "big.json",
            &crate::helpers::manifest(vec![t]),
        )],
        &catalog,
    );
    assert!(
        v.problems
            .iter()
            .any(|p| p.pointer == "/templates/0/default_perimeter/budget_cents"),
        "{:#?}",
        v.problems
    );
}

#[test]
fn errors_inside_a_template_name_the_file_line_and_column() {
    // Templates are parsed one by one; their errors must still point into the whole file.
    let text = "{\"manifest_version\": 1,\n \"templates\": [\n  {\"id\": \"talent.a\"},\n  {\"id\": \"talent.b\", \"max\": 1e999}\n ]\n}";
    let (code, msg) = code_of(text.as_bytes().to_vec());
    assert_eq!(code, ProblemCode::Syntax);
    assert!(msg.contains("too large"), "{msg}");
    let expected_column = "  {\"id\": \"talent.b\", \"max\": 1e999".len();
    assert!(
        msg.contains(&format!("line 4, column {expected_column}")),
        "{msg}"
    );
    let first_line = "{\"manifest_version\": 1e999, \"templates\": []}";
    let (_, msg) = code_of(first_line.as_bytes().to_vec());
    let column = "{\"manifest_version\": 1e999".len();
    assert!(msg.contains(&format!("line 1, column {column}")), "{msg}");
}

#[test]
fn wrong_types() {
    let mut t = crate::helpers::template(
        "talent.types",
        "Types",
        "A template with fields of the wrong type.",
    );
    t["required_depts"] = serde_json::json!("1, 8");
    t["default_perimeter"]["max_steps"] = serde_json::json!("forty");
    let catalog = Catalog::bundled().expect("catalog");
    let v = validate(
        &[crate::helpers::input(
            "types.json",
            &crate::helpers::manifest(vec![t]),
        )],
        &catalog,
    );
    let pointers: Vec<&str> = v.problems.iter().map(|p| p.pointer.as_str()).collect();
    assert!(
        pointers.contains(&"/templates/0/required_depts"),
        "{pointers:?}"
    );
    assert!(
        pointers.contains(&"/templates/0/default_perimeter/max_steps"),
        "{pointers:?}"
    );
    assert!(v.problems.iter().all(|p| p.message.contains("wrong type")));
}

#[test]
fn a_lone_template_where_a_manifest_is_expected() {
    let t = crate::helpers::template(
        "talent.lone",
        "Lone",
        "A template given without its manifest wrapper.",
    );
    let catalog = Catalog::bundled().expect("catalog");
    let v = validate(
        &[ManifestInput::new(
            "lone.json",
            serde_json::to_vec(&t).expect("json"),
        )],
        &catalog,
    );
    assert!(
        v.problems
            .iter()
            .any(|p| p.message.contains("manifest_version")),
        "{:#?}",
        v.problems
    );
}

#[test]
fn every_unreadable_file_is_reported_together() {
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good.json");
    std::fs::write(&good, b"{}").expect("write");
    let paths = [
        dir.path().join("missing-a.json"),
        good,
        dir.path().join("missing-b.json"),
    ];
    let catalog = Catalog::bundled().expect("catalog");
    let problems = mission_core::registry::service::read_manifests(&paths, &catalog)
        .expect_err("two files are missing");
    assert_eq!(problems.len(), 2);
    assert!(problems.iter().all(|p| p.code == ProblemCode::Unreadable));
    assert!(
        problems[0].file.ends_with("missing-a.json")
            && problems[1].file.ends_with("missing-b.json")
    );
}
