//! Which Applications exist: those rendered from `apps_path` of the GitOps repository, plus,
//! recursively, those an Application's own render contains (app of apps).
//!
//! # Decisions
//!
//! - **Pure over a render callback.** [`discover`] is handed the root objects and a function
//!   that renders one application; it never touches Git, so app-of-apps, cycles and duplicate
//!   names are tested with tables. The callback's results are kept with each application: the
//!   controller needs every render anyway (the desired objects), so discovery costs nothing
//!   extra.
//! - **Applications in a render are children, not objects.** An app-of-apps does not apply its
//!   child Applications to the runtime; everything else it renders is its own.
//! - **Errors stay local.** An invalid Application is listed under its name with the located
//!   message (it has no spec, so nothing is synced for it). A child whose name is already
//!   taken (by an ancestor: a cycle; by anyone else: a duplicate) is dropped and the error is
//!   put on the parent that rendered it; the first holder of the name keeps it. An object with
//!   no name cannot be listed at all: the error goes on the parent (or, at the root, is
//!   returned as a root error).

use std::collections::HashMap;
use std::sync::Arc;

use slipway_model::Object;

use crate::app::{is_application, parse_application, AppSpec};

/// A render result shared between discovery and the controller.
pub(crate) type RenderResult = Result<Arc<Vec<Object>>, String>;

/// One discovered application.
#[derive(Debug, Clone)]
pub(crate) struct Discovered {
    /// `metadata.name`.
    pub name: String,
    /// The parsed spec; `None` when the Application is invalid (see `error`).
    pub spec: Option<AppSpec>,
    /// The application rendering this one (app of apps), `None` at the root.
    pub parent: Option<String>,
    /// Why the application cannot be used (invalid, or children it renders are in conflict).
    pub error: Option<String>,
    /// The application's render (child Applications removed), when it has a spec.
    pub rendered: Option<RenderResult>,
}

/// Everything discovery found, sorted by name, plus problems not attributable to an app.
#[derive(Debug, Clone, Default)]
pub(crate) struct Discovery {
    /// Applications by name order.
    pub apps: Vec<Discovered>,
    /// Problems at the root (`apps_path` objects that are not Applications are ignored).
    pub root_errors: Vec<String>,
}

/// Discover Applications from the objects rendered at `apps_path`, rendering each
/// application through `render` to find the Applications it contains.
pub(crate) fn discover(
    root: &[Object],
    render: &mut dyn FnMut(&AppSpec) -> RenderResult,
) -> Discovery {
    let mut out = Discovery::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Work list: (object, parent, ancestors of the object including parent).
    let mut queue: Vec<(Object, Option<String>, Vec<String>)> = root
        .iter()
        .filter(|o| is_application(o))
        .map(|o| (o.clone(), None, Vec::new()))
        .collect();
    queue.reverse();
    while let Some((obj, parent, ancestors)) = queue.pop() {
        let name = obj.name().to_string();
        let conflict = if name.is_empty() {
            Some("an Application without metadata.name".to_string())
        } else if ancestors.contains(&name) {
            Some(format!(
                "Application {name:?} renders itself through {} (a cycle)",
                ancestors.join(" -> ")
            ))
        } else if let Some(&i) = index.get(&name) {
            let at = out.apps[i]
                .spec
                .as_ref()
                .map(|s| s.file.clone())
                .unwrap_or_default();
            Some(format!(
                "Application {name:?} is defined twice ({} and {})",
                if at.is_empty() { "elsewhere" } else { &at },
                obj.origin
                    .as_ref()
                    .map(|o| o.file.to_string())
                    .unwrap_or_default()
            ))
        } else {
            None
        };
        if let Some(problem) = conflict {
            match parent.as_ref().and_then(|p| index.get(p)) {
                Some(&i) => add_error(&mut out.apps[i], problem),
                None => out.root_errors.push(problem),
            }
            continue;
        }
        let (spec, error) = match parse_application(&obj) {
            Ok(spec) => (Some(spec), None),
            Err(e) => (None, Some(e)),
        };
        let mut rendered = None;
        if let Some(spec) = &spec {
            let result = render(spec);
            let result = match result {
                Ok(objs) if objs.iter().any(is_application) => {
                    let mut lineage = ancestors.clone();
                    lineage.push(name.clone());
                    let children: Vec<Object> =
                        objs.iter().filter(|o| is_application(o)).cloned().collect();
                    // Children go to the front of the queue, in order, after this app.
                    for child in children.into_iter().rev() {
                        queue.push((child, Some(name.clone()), lineage.clone()));
                    }
                    Ok(Arc::new(
                        objs.iter()
                            .filter(|o| !is_application(o))
                            .cloned()
                            .collect(),
                    ))
                }
                other => other,
            };
            rendered = Some(result);
        }
        index.insert(name.clone(), out.apps.len());
        out.apps.push(Discovered {
            name,
            spec,
            parent,
            error,
            rendered,
        });
    }
    out.apps.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn add_error(app: &mut Discovered, problem: String) {
    app.error = Some(match app.error.take() {
        Some(e) => format!("{e}; {problem}"),
        None => problem,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, path: &str) -> String {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  project: default\n  source:\n    repoURL: .\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n"
        )
    }

    fn objs(file: &str, docs: &[String]) -> Vec<Object> {
        slipway_model::load_objects(file, &docs.join("---\n")).unwrap()
    }

    /// Discover with a fake repository: path -> documents.
    fn check(root: &[String], tree: &[(&str, Vec<String>)]) -> Discovery {
        let root = objs("applications/all.yaml", root);
        let mut render = |spec: &AppSpec| -> RenderResult {
            match tree.iter().find(|(p, _)| *p == spec.path) {
                Some((p, docs)) => Ok(Arc::new(objs(&format!("{p}/all.yaml"), docs))),
                None => Err(format!("{}: no such directory", spec.path)),
            }
        };
        discover(&root, &mut render)
    }

    fn cm(name: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
    }

    #[test]
    fn plain_applications_with_their_renders() {
        let d = check(
            &[app("b", "apps/b"), app("a", "apps/a")],
            &[("apps/a", vec![cm("x")]), ("apps/b", vec![cm("y")])],
        );
        let names: Vec<&str> = d.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = d.apps[0].rendered.clone().unwrap().unwrap();
        assert_eq!(a[0].name(), "x");
        assert!(d.root_errors.is_empty());
    }

    #[test]
    fn app_of_apps_adds_children_and_keeps_its_own_objects() {
        let d = check(
            &[app("root", "apps/root")],
            &[
                ("apps/root", vec![app("child", "apps/child"), cm("own")]),
                ("apps/child", vec![app("grandchild", "apps/gc")]),
                ("apps/gc", vec![cm("leaf")]),
            ],
        );
        let names: Vec<(&str, Option<&str>)> = d
            .apps
            .iter()
            .map(|a| (a.name.as_str(), a.parent.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("child", Some("root")),
                ("grandchild", Some("child")),
                ("root", None)
            ]
        );
        let root = d.apps[2].rendered.clone().unwrap().unwrap();
        assert_eq!(root.len(), 1);
        assert_eq!(root[0].name(), "own");
        assert!(d.apps.iter().all(|a| a.error.is_none()));
    }

    #[test]
    fn cycles_and_duplicates_are_errors_on_the_parent() {
        let d = check(
            &[app("root", "apps/root"), app("other", "apps/other")],
            &[
                ("apps/root", vec![app("child", "apps/child")]),
                ("apps/child", vec![app("root", "apps/root")]),
                ("apps/other", vec![app("child", "apps/x")]),
            ],
        );
        let get = |n: &str| d.apps.iter().find(|a| a.name == n).unwrap();
        let child_err = get("child").error.clone().unwrap();
        assert!(child_err.contains("a cycle"), "{child_err}");
        let other_err = get("other").error.clone().unwrap();
        assert!(other_err.contains("defined twice"), "{other_err}");
        assert!(get("root").error.is_none());
        assert_eq!(d.apps.len(), 3);
    }

    #[test]
    fn invalid_application_is_listed_with_its_location() {
        let bad = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: bad\nspec:\n  project: default\n  destination:\n    server: https://kubernetes.default.svc\n".to_string();
        let d = check(&[bad, app("good", "apps/good")], &[("apps/good", vec![])]);
        let bad = &d.apps[0];
        assert_eq!(bad.name, "bad");
        assert!(bad.spec.is_none());
        let e = bad.error.clone().unwrap();
        assert!(e.starts_with("applications/all.yaml:"), "{e}");
        assert!(d.apps[1].error.is_none());
    }

    #[test]
    fn render_errors_stay_with_the_app() {
        let d = check(&[app("a", "apps/missing")], &[]);
        assert!(matches!(d.apps[0].rendered, Some(Err(_))));
        assert!(d.apps[0].error.is_none());
    }
}
