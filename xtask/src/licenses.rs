//! The licence check: every package in the resolved dependency tree (all features, all
//! targets, dev and build dependencies included) must be usable under paravox's own
//! licence, Apache-2.0 OR MIT. In practice: no GPL-family crate anywhere in the tree.

mod spdx;

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd;
use spdx::{Expr, ParseError};

/// Licences (and licence-with-exception pairs) compatible with shipping paravox under
/// Apache-2.0 OR MIT. A package passes when its expression can be satisfied by choosing
/// only from this list.
const ALLOWED: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "0BSD",
    "BSL-1.0",
    "CC0-1.0",
    "MPL-2.0",
    "Unlicense",
    "CDLA-Permissive-2.0",
];

/// What a workspace member without a `license` field is taken to be.
const OUR_LICENCE: &str = "Apache-2.0 OR MIT";

/// Whether `id` (with `exception`, if any) is on the allow-list. SPDX identifiers match
/// case-insensitively.
fn is_allowed(id: &str, exception: Option<&str>) -> bool {
    ALLOWED
        .iter()
        .any(|entry| match (entry.split_once(" WITH "), exception) {
            (Some((entry_id, entry_exception)), Some(exception)) => {
                entry_id.eq_ignore_ascii_case(id) && entry_exception.eq_ignore_ascii_case(exception)
            }
            (None, None) => entry.eq_ignore_ascii_case(id),
            _ => false,
        })
}

/// Whether a package licensed under `expression` may be in paravox's dependency tree.
pub fn accepts(expression: &str) -> Result<bool, ParseError> {
    Ok(Expr::parse(expression)?.is_satisfied_by(&is_allowed))
}

/// `cargo xtask licenses`: checks the tree and prints a summary.
pub fn check() -> Result<()> {
    let lock_file = cmd::workspace_root().join("Cargo.lock");
    if !lock_file.exists() {
        bail!(
            "{} does not exist: run `cargo generate-lockfile` first",
            lock_file.display()
        );
    }
    let metadata = cmd::output(&mut cmd::cargo([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--all-features",
    ]))?;
    let metadata: Value =
        serde_json::from_str(&metadata).context("`cargo metadata` printed invalid JSON")?;
    let report = review(&metadata)?;
    report.print();
    if !report.offenders.is_empty() {
        bail!(
            "licence check failed: {} package(s) cannot be used under {OUR_LICENCE}",
            report.offenders.len()
        );
    }
    Ok(())
}

/// The outcome of reviewing every package.
#[derive(Debug, Default)]
struct Report {
    packages: usize,
    members: usize,
    /// How many packages declare each licence expression.
    licences: BTreeMap<String, usize>,
    offenders: Vec<Offender>,
}

/// A package that fails the check, and why.
#[derive(Debug, PartialEq, Eq)]
struct Offender {
    name: String,
    version: String,
    problem: String,
}

/// One package as `cargo metadata` describes it.
#[derive(Debug)]
struct Package<'a> {
    name: &'a str,
    version: &'a str,
    license: Option<&'a str>,
    license_file: Option<&'a str>,
    is_member: bool,
}

fn review(metadata: &Value) -> Result<Report> {
    let members: HashSet<&str> = metadata["workspace_members"]
        .as_array()
        .context("`cargo metadata` has no workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = metadata["packages"]
        .as_array()
        .context("`cargo metadata` has no packages")?;

    let mut report = Report::default();
    for package in packages {
        let package = Package {
            name: package["name"].as_str().context("a package has no name")?,
            version: package["version"].as_str().unwrap_or("?"),
            license: package["license"].as_str(),
            license_file: package["license_file"].as_str(),
            is_member: package["id"]
                .as_str()
                .is_some_and(|id| members.contains(id)),
        };
        report.packages += 1;
        report.members += usize::from(package.is_member);
        *report.licences.entry(licence_label(&package)).or_default() += 1;
        if let Err(problem) = judge(&package) {
            report.offenders.push(Offender {
                name: package.name.to_owned(),
                version: package.version.to_owned(),
                problem,
            });
        }
    }
    Ok(report)
}

/// How a package's licence is shown in the summary.
fn licence_label(package: &Package<'_>) -> String {
    match (package.license, package.license_file) {
        (Some(expression), _) => expression.to_owned(),
        (None, _) if package.is_member => format!("{OUR_LICENCE} (workspace member, implied)"),
        (None, Some(_)) => "(license-file only)".to_owned(),
        (None, None) => "(none declared)".to_owned(),
    }
}

/// `Ok` when the package may be in the tree, otherwise why not.
fn judge(package: &Package<'_>) -> Result<(), String> {
    match (package.license, package.license_file) {
        (Some(expression), _) => match accepts(expression) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "`{expression}` cannot be satisfied with the allowed licences"
            )),
            Err(error) => Err(format!(
                "`{expression}` is not a valid SPDX expression: {error}"
            )),
        },
        // Our own crates are Apache-2.0 OR MIT whether or not they say so.
        (None, _) if package.is_member => Ok(()),
        (None, Some(file)) => Err(format!(
            "no SPDX `license` field, only license_file `{file}`: review it by hand"
        )),
        (None, None) => Err("declares no licence".to_owned()),
    }
}

impl Report {
    fn print(&self) {
        println!(
            "licences: {} packages checked ({} workspace members)",
            self.packages, self.members
        );
        let mut licences: Vec<_> = self.licences.iter().collect();
        licences.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (licence, count) in licences {
            println!("  {count:>5}  {licence}");
        }
        if self.offenders.is_empty() {
            println!("licences: ok, every package can be used under {OUR_LICENCE}");
            return;
        }
        println!(
            "licences: {} package(s) cannot be used under {OUR_LICENCE}:",
            self.offenders.len()
        );
        for offender in &self.offenders {
            println!(
                "  {} {}: {}",
                offender.name, offender.version, offender.problem
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gpl_is_rejected() {
        assert_eq!(accepts("GPL-3.0"), Ok(false));
        assert_eq!(accepts("GPL-3.0-only"), Ok(false));
        assert_eq!(accepts("GPL-2.0+"), Ok(false));
    }

    #[test]
    fn an_allowed_alternative_is_enough() {
        assert_eq!(accepts("MIT OR GPL-2.0"), Ok(true));
        assert_eq!(accepts("GPL-2.0 OR MIT"), Ok(true));
        assert_eq!(accepts("MIT/Apache-2.0"), Ok(true));
    }

    #[test]
    fn every_and_operand_must_be_allowed() {
        assert_eq!(accepts("MIT AND GPL-2.0"), Ok(false));
        assert_eq!(accepts("(MIT OR Apache-2.0) AND Unicode-3.0"), Ok(true));
        assert_eq!(
            accepts("(MIT OR Apache-2.0) AND (GPL-2.0 OR LGPL-3.0)"),
            Ok(false)
        );
    }

    #[test]
    fn exceptions_must_be_listed_with_their_licence() {
        assert_eq!(accepts("Apache-2.0 WITH LLVM-exception"), Ok(true));
        assert_eq!(
            accepts("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"),
            Ok(true)
        );
        assert_eq!(accepts("GPL-2.0 WITH Classpath-exception-2.0"), Ok(false));
        assert_eq!(accepts("MIT WITH LLVM-exception"), Ok(false));
    }

    #[test]
    fn lgpl_is_rejected() {
        assert_eq!(accepts("LGPL-2.1-or-later"), Ok(false));
        assert_eq!(accepts("LGPL-2.1-only OR GPL-3.0"), Ok(false));
    }

    #[test]
    fn identifiers_match_case_insensitively() {
        assert_eq!(accepts("mit or apache-2.0"), Ok(true));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(accepts("MIT,Apache-2.0").is_err());
        assert!(accepts("MIT OR").is_err());
        assert!(accepts("(MIT").is_err());
        assert!(accepts("MIT Apache-2.0").is_err());
        assert!(accepts("").is_err());
        assert!(accepts("☃").is_err());
    }

    fn metadata(packages: Value) -> Value {
        json!({ "workspace_members": ["ours 0.1.0"], "packages": packages })
    }

    #[test]
    fn review_names_each_offender() {
        let metadata = metadata(json!([
            { "id": "ours 0.1.0", "name": "ours", "version": "0.1.0",
              "license": null, "license_file": null },
            { "id": "good 1.0.0", "name": "good", "version": "1.0.0",
              "license": "MIT OR Apache-2.0", "license_file": null },
            { "id": "bad 2.0.0", "name": "bad", "version": "2.0.0",
              "license": "GPL-3.0", "license_file": null },
            { "id": "file 3.0.0", "name": "file", "version": "3.0.0",
              "license": null, "license_file": "LICENSE" },
            { "id": "none 4.0.0", "name": "none", "version": "4.0.0",
              "license": null, "license_file": null },
            { "id": "junk 5.0.0", "name": "junk", "version": "5.0.0",
              "license": "MIT,", "license_file": null },
        ]));
        let report = review(&metadata).unwrap();
        assert_eq!(report.packages, 6);
        assert_eq!(report.members, 1);
        let offenders: Vec<_> = report
            .offenders
            .iter()
            .map(|o| (o.name.as_str(), o.version.as_str()))
            .collect();
        assert_eq!(
            offenders,
            [
                ("bad", "2.0.0"),
                ("file", "3.0.0"),
                ("none", "4.0.0"),
                ("junk", "5.0.0")
            ]
        );
        assert!(report.offenders[1].problem.contains("LICENSE"));
        assert!(
            report.offenders[3]
                .problem
                .contains("not a valid SPDX expression")
        );
        assert_eq!(report.licences["GPL-3.0"], 1);
    }

    #[test]
    fn a_member_with_a_gpl_licence_is_still_rejected() {
        let metadata = metadata(json!([
            { "id": "ours 0.1.0", "name": "ours", "version": "0.1.0",
              "license": "GPL-3.0-only", "license_file": null },
        ]));
        assert_eq!(review(&metadata).unwrap().offenders.len(), 1);
    }
}
