"""Everything derived from a study's storage: artefact files, report.html, a workflow's index,
SVG figures, dashboard notes and serving. May import: analysis, sweep and below."""
