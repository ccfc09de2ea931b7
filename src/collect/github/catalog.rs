//! Reads the few keys pavemeter needs from a Backstage `catalog-info.yaml`: `metadata.name`,
//! `metadata.annotations`, `metadata.tags`, `spec.owner`, `spec.lifecycle`. A small reader of YAML's
//! block-mapping subset (what catalog files use) instead of a YAML dependency; the first document of a
//! multi-document file is the component.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CatalogInfo {
    pub name: Option<String>,
    pub owner: Option<String>,
    pub lifecycle: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub tags: Vec<String>,
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\''))) {
        v[1..v.len() - 1].to_string()
    } else {
        // A trailing ` # comment` is not part of a plain scalar.
        v.split(" #").next().unwrap_or("").trim().to_string()
    }
}

fn flow_list(v: &str) -> Option<Vec<String>> {
    let inner = v.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split(',').map(unquote).filter(|s| !s.is_empty()).collect())
}

/// Team slug from a Backstage owner reference: `group:default/payments` → `payments`.
pub fn owner_team(owner: &str) -> String {
    let o = owner.trim();
    let o = o.split_once(':').map(|(_, r)| r).unwrap_or(o);
    let o = o.rsplit('/').next().unwrap_or(o);
    crate::domain::ids::slugify(o)
}

pub fn parse(text: &str) -> CatalogInfo {
    let mut scalars: BTreeMap<String, String> = BTreeMap::new();
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut seen_content = false;
    for raw in text.lines() {
        let trimmed = raw.trim_end();
        let content = trimmed.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if content.starts_with("---") {
            if seen_content {
                break;
            }
            continue;
        }
        seen_content = true;
        let indent = trimmed.len() - content.len();
        if let Some(item) = content
            .strip_prefix("- ")
            .or(if content == "-" { Some("") } else { None })
        {
            while path.last().is_some_and(|(i, _)| *i > indent) {
                path.pop();
            }
            let key = path.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>().join(".");
            lists.entry(key).or_default().push(unquote(item));
            continue;
        }
        let Some((k, v)) = content.split_once(':') else {
            continue;
        };
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        let key = unquote(k);
        let full = path
            .iter()
            .map(|(_, k)| k.as_str())
            .chain([key.as_str()])
            .collect::<Vec<_>>()
            .join(".");
        let v = v.trim();
        if v.is_empty() {
            path.push((indent, key));
        } else if let Some(items) = flow_list(v) {
            lists.insert(full, items);
        } else {
            scalars.insert(full, unquote(v));
        }
    }
    let annotations = scalars
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata.annotations.")
                .map(|a| (a.to_string(), v.clone()))
        })
        .collect();
    CatalogInfo {
        name: scalars.get("metadata.name").cloned().filter(|s| !s.is_empty()),
        owner: scalars.get("spec.owner").cloned().filter(|s| !s.is_empty()),
        lifecycle: scalars.get("spec.lifecycle").cloned().filter(|s| !s.is_empty()),
        annotations,
        tags: lists.remove("metadata.tags").unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_component_of_a_catalog_file() {
        let text = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: payments-api  # the service\n  annotations:\n    backstage.io/source-template: template:default/go-service\n    github.com/project-slug: 'acme/payments'\n  tags:\n    - go\n    - \"grpc\"\nspec:\n  type: service\n  owner: group:default/payments\n  lifecycle: production\n---\nkind: API\nmetadata:\n  name: other\n";
        let c = parse(text);
        assert_eq!(c.name.as_deref(), Some("payments-api"));
        assert_eq!(c.owner.as_deref(), Some("group:default/payments"));
        assert_eq!(c.lifecycle.as_deref(), Some("production"));
        assert_eq!(
            c.annotations.get("backstage.io/source-template").map(String::as_str),
            Some("template:default/go-service")
        );
        assert_eq!(
            c.annotations.get("github.com/project-slug").map(String::as_str),
            Some("acme/payments")
        );
        assert_eq!(c.tags, vec!["go", "grpc"]);
        assert_eq!(owner_team("group:default/payments"), "payments");
        assert_eq!(owner_team("platform"), "platform");
    }

    #[test]
    fn flow_lists_and_missing_keys() {
        let c = parse("metadata:\n  tags: [a, 'b']\nspec: {}\n");
        assert_eq!(c.tags, vec!["a", "b"]);
        assert_eq!(c.name, None);
        assert_eq!(c.owner, None);
    }
}
