//! A project: the journeys under `workflows/` and the templates under `templates/`,
//! loaded and checked together (templates are checked against the steps that use them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;

use crate::diagnostic::{Diagnostic, Severity};
use crate::journey::{self, Journey};
use crate::source::{SourceFile, Span};
use crate::template::TemplateCatalog;

/// What to load: journey files and one templates folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub journeys: Vec<PathBuf>,
    pub templates: Option<PathBuf>,
}

impl Sources {
    /// The journeys of `workflows` and the templates folder `templates`.
    pub fn standard(workflows: &Path, templates: &Path) -> std::io::Result<Sources> {
        Ok(Sources { journeys: journey_files(workflows)?, templates: Some(templates.to_path_buf()) })
    }

    /// Sorts command-line paths into journeys and a templates folder: a `.yaml` file is a
    /// journey, a folder holding `.hbs` files is the templates folder, any other folder
    /// holds journeys. Without a templates path, `templates/` beside the journeys is used.
    pub fn from_paths(paths: &[PathBuf]) -> std::io::Result<Sources> {
        let mut sources = Sources::default();
        for path in paths {
            if path.is_dir() {
                if contains_templates(path)? {
                    sources.templates = Some(path.clone());
                } else {
                    sources.journeys.extend(journey_files(path)?);
                }
            } else if path.extension().is_some_and(|e| e == "hbs") {
                let root = path.ancestors().find(|a| a.file_name().is_some_and(|n| n == "templates"));
                sources.templates = Some(root.unwrap_or_else(|| path.parent().unwrap_or(Path::new("."))).to_path_buf());
            } else if path.exists() {
                sources.journeys.push(path.clone());
            } else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} does not exist", path.display()),
                ));
            }
        }
        if sources.templates.is_none()
            && let Some(first) = sources.journeys.first()
        {
            let sibling = first.parent().and_then(Path::parent).unwrap_or(Path::new(".")).join("templates");
            sources.templates = sibling.is_dir().then_some(sibling);
        }
        Ok(sources)
    }
}

pub struct Project {
    pub journeys: Vec<Journey>,
    pub templates: TemplateCatalog,
    pub diagnostics: Vec<Diagnostic>,
    pub journey_files: usize,
    /// The file of each valid journey, by journey id (the engine stores each version).
    pub sources: std::collections::HashMap<String, Arc<SourceFile>>,
}

impl Project {
    pub fn load(sources: &Sources, default_timezone: Tz) -> Project {
        let (templates, mut diagnostics) = match &sources.templates {
            Some(dir) => TemplateCatalog::load(dir),
            None => TemplateCatalog::load(Path::new("")),
        };
        let context = journey::Context { templates: &templates, default_timezone };
        let mut journeys = Vec::new();
        let mut files = std::collections::HashMap::new();
        for path in &sources.journeys {
            let file = match SourceFile::read(path) {
                Ok(file) => file,
                Err(e) => {
                    let empty = SourceFile::new(path, "");
                    diagnostics.push(Diagnostic::error(
                        "J000",
                        &empty,
                        Span::default(),
                        format!("cannot read this file: {e}"),
                    ));
                    continue;
                }
            };
            let (journey, found) = journey::compile(&file, &context);
            diagnostics.extend(found);
            if let Some(journey) = journey {
                files.insert(journey.id.clone(), Arc::clone(&file));
                journeys.push(journey);
            }
        }
        diagnostics.sort_by(|a, b| (a.file.path(), a.span.start, a.code).cmp(&(b.file.path(), b.span.start, b.code)));
        diagnostics.dedup_by(|a, b| a.file.path() == b.file.path() && a.span == b.span && a.message == b.message);
        Project { journeys, templates, diagnostics, journey_files: sources.journeys.len(), sources: files }
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == severity).count()
    }
}

fn journey_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

fn contains_templates(dir: &Path) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "hbs") || (path.is_dir() && contains_templates(&path)?) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random bytes in a journey file give diagnostics, never a panic or a journey.
        #[test]
        fn random_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("noise.yaml");
            std::fs::write(&path, &bytes).unwrap();
            std::fs::create_dir(dir.path().join("templates")).unwrap();
            let sources = Sources { journeys: vec![path], templates: Some(dir.path().join("templates")) };
            let project = Project::load(&sources, chrono_tz::UTC);
            prop_assert!(project.journeys.is_empty());
            prop_assert!(project.count(Severity::Error) >= 1);
            prop_assert!(project.diagnostics.iter().all(|d| d.file.path().ends_with("noise.yaml")));
        }
    }
}
