//! What the README promises a new user, checked against the repository: it points to nothing
//! outside it, names the licence files Cargo.toml names (and they exist), says how long the two
//! commands take and how much disk they need, how to install every binary, and that Rust and Go
//! members do not mix while clients do.
#![cfg(not(madsim))]

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

#[test]
fn the_readme_points_to_nothing_outside_the_repository() {
    let text = readme();
    let outside: Vec<&str> = text.lines().filter(|line| line.contains("../")).collect();
    assert!(outside.is_empty(), "{outside:#?}");
}

#[test]
fn the_licence_files_cargo_names_exist() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let license = manifest
        .lines()
        .find_map(|line| line.strip_prefix("license = "))
        .expect("a license in the workspace manifest")
        .trim_matches('"');
    for (name, file) in [("MIT", "LICENSE-MIT"), ("Apache-2.0", "LICENSE-APACHE")] {
        assert!(license.contains(name), "{license}");
        let text = std::fs::read_to_string(root().join(file)).unwrap_or_default();
        assert!(text.len() > 500, "{file} holds the licence text");
        assert!(readme().contains(file), "the README names {file}");
    }
}

#[test]
fn the_two_commands_say_what_they_cost() {
    let text = readme();
    let section = &text[text.find("## Two commands").expect("the section")..];
    let section = &section[..section[3..].find("\n## ").map(|i| i + 3).unwrap_or(section.len())];
    for command in ["bash scripts/quickstart.sh", "bash scripts/test.sh"] {
        let at = section
            .find(command)
            .unwrap_or_else(|| panic!("{command} in the section"));
        let after = &section[at..];
        let paragraph = &after[..after.find("```sh").unwrap_or(after.len())];
        assert!(paragraph.contains("minutes"), "how long {command} takes");
        assert!(paragraph.contains(" GB"), "how much disk {command} needs");
    }
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("bash scripts/test.sh"), "CI runs the README's test command");
}

#[test]
fn every_binary_is_installable_as_the_readme_says() {
    let text = readme();
    for entry in std::fs::read_dir(root().join("bins")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            text.contains(&format!("--path bins/{name}")),
            "the README says how to install {name}"
        );
    }
}

#[test]
fn the_readme_says_what_mixes_with_go() {
    let text = readme();
    assert!(text.contains("Rust and Go members do not mix"), "members");
    assert!(text.contains("REST API and its clients"), "clients carry over");
    assert!(text.contains("`service.json`"), "configuration carries over");
}
