"""The package's shape: the rules docs/architecture.md states, checked on the source itself.
(The import layers and the absence of cycles are import-linter's contracts in pyproject.toml.)"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dropout_decay"
LAZY_ALLOWED = {"cli"}  # start-up time: the command line imports what a command needs when it runs


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def internal_imports_inside_functions(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.level > 0 or (inner.module or "").startswith("dropout_decay")):
                    lines.append(inner.lineno)
    return lines


def test_only_the_command_line_imports_the_package_inside_functions():
    found = {str(p.relative_to(PACKAGE)): lines for p in modules()
             if p.relative_to(PACKAGE).parts[0] not in LAZY_ALLOWED and (lines := internal_imports_inside_functions(p))}
    assert found == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    probe = tmp_path / "m.py"
    probe.write_text("def f():\n    from .errors import UsageError\n    import json\n")
    assert internal_imports_inside_functions(probe) == [2]


def test_no_module_is_over_300_lines():
    assert {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > 300} == {}


def test_every_subpackage_says_what_it_is_for_and_what_it_may_import():
    faces = sorted(p for p in PACKAGE.glob("*/__init__.py"))
    assert len(faces) == 8
    for face in faces:
        doc = ast.get_docstring(ast.parse(face.read_text())) or ""
        assert "import" in doc.lower(), face


def test_the_command_line_starts_without_torch_so_ctrl_c_is_handled_before_the_heavy_imports():
    """main.py installs the Ctrl-C handler; whatever it imports at module level loads before that."""
    import subprocess
    import sys

    code = "import sys, dropout_decay.study; print(sorted(m for m in ('torch', 'optuna', 'pandas', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
