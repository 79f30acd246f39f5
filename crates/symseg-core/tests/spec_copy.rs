//! `docs/SPEC.md` is the copy of the project's contract that ships with the
//! repository; it must stay identical to the steering copy in `../shared/`.

#[test]
fn docs_spec_is_the_shared_contract() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ours = std::fs::read_to_string(root.join("docs/SPEC.md")).expect("docs/SPEC.md exists");
    assert!(ours.contains("## 3. Symmetry strategies"), "docs/SPEC.md lost its content");
    match std::fs::read_to_string(root.join("../shared/SPEC.md")) {
        Ok(shared) => assert_eq!(ours, shared, "docs/SPEC.md differs from ../shared/SPEC.md: copy it over"),
        Err(e) => eprintln!("skipped comparison: ../shared/SPEC.md not readable ({e})"),
    }
}
