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
    assert len(faces) == 9
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


def long_functions(path: Path, limit: int = 60) -> list[str]:
    return [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_no_function_is_over_60_lines():
    assert {str(p.relative_to(PACKAGE)): f for p in modules() if (f := long_functions(p))} == {}


def deep_imports_across_rooms(path: Path) -> list[str]:
    """`from ..room.module import x` in another room: it should import from the room's face."""
    room = path.relative_to(PACKAGE).parts[0]
    return [f"{n.lineno}: from ..{n.module}" for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.ImportFrom) and n.level == 2 and n.module and "." in n.module
            and n.module.split(".")[0] != room]


def test_rooms_import_each_other_from_their_faces_and_each_face_says_what_it_offers():
    assert {str(p.relative_to(PACKAGE)): d for p in modules() if len(p.relative_to(PACKAGE).parts) > 1
            and (d := deep_imports_across_rooms(p))} == {}
    import importlib

    for face in sorted(PACKAGE.glob("*/__init__.py")):
        module = importlib.import_module(f"dropout_decay.{face.parent.name}")
        assert module.__all__ and all(hasattr(module, name) for name in module.__all__), face
        assert module.__all__ == sorted(module.__all__), face
        # a re-exported name equal to a module's would hide that module (`from room import module`)
        assert not set(module.__all__) & {p.stem for p in face.parent.glob("*.py")}, face


def test_the_face_check_sees_a_deep_import(tmp_path):
    room = tmp_path / "dropout_decay" / "report"
    room.mkdir(parents=True)
    (room / "m.py").write_text("from ..sweep.grid import grid_status\nfrom ..sweep import open_study\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "dropout_decay"
    try:
        assert deep_imports_across_rooms(room / "m.py") == ["1: from ..sweep.grid"]
    finally:
        PACKAGE = saved


ENVIRONMENT = ("environ", "argv", "gethostname", "getcwd", "getpid", "cpu_count", "sched_getaffinity")


def environment_read_at_import(path: Path) -> list[int]:
    """Lines of module-level code (outside functions and classes) that read the process's
    environment: such state is frozen at import, so a later change (a test's environment, the
    console script's name) goes unseen."""
    lines = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
            continue
        lines += [n.lineno for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr in ENVIRONMENT]
    return lines


def test_no_module_reads_the_environment_when_it_is_imported():
    assert {str(p.relative_to(PACKAGE)): lines for p in modules() if (lines := environment_read_at_import(p))} == {}


def test_the_environment_check_sees_a_global_read_at_import(tmp_path):
    probe = tmp_path / "m.py"
    probe.write_text("import os, sys\nPROG = sys.argv[0]\ndef f():\n    return os.environ\n")
    assert environment_read_at_import(probe) == [2]


STAGE_WORDS = {"screen", "confirm", "probe", "stream", "map"}
SPELLED_ONCE = {"@fixed": "model/arms.py", "static:": "model/schedules.py"}  # stored arm-name parts


def stringly_kinds(path: Path) -> list[str]:
    """A stage name compared as a string (`stage == "stream"`, `in ("map", "probe")`), or a stored
    arm-name part spelled outside the module that owns it: both belong to the types
    (common/stages.Stage, model/arms.Arm), so that a new kind changes one place."""
    where = str(path.relative_to(PACKAGE))
    found = []
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Compare):
            for side in [n.left, *n.comparators]:
                texts = [e.value for e in getattr(side, "elts", [side]) if isinstance(e, ast.Constant)]
                found += [f"{n.lineno}: compares {t!r}" for t in texts if t in STAGE_WORDS]
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and " " not in n.value:  # code, not prose
            found += [f"{n.lineno}: spells {part!r}" for part, owner in SPELLED_ONCE.items()
                      if part in n.value and where != owner]
    return found


def test_stages_and_arm_names_are_asked_of_their_types_not_compared_as_strings():
    allowed = {"common/stages.py"}
    assert {str(p.relative_to(PACKAGE)): f for p in modules()
            if str(p.relative_to(PACKAGE)) not in allowed and (f := stringly_kinds(p))} == {}


def test_the_string_check_sees_a_stage_comparison_and_a_stray_suffix(tmp_path):
    room = tmp_path / "dropout_decay" / "analysis"
    room.mkdir(parents=True)
    (room / "m.py").write_text('def f(c, a):\n    if c["stage"] in ("map", "probe") or c["stage"] == "stream":\n'
                               '        return a.endswith("@fixed") or a.startswith("static:")\n')
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "dropout_decay"
    try:
        assert stringly_kinds(room / "m.py") == ["2: compares 'map'", "2: compares 'probe'", "2: compares 'stream'",
                                                 "3: spells '@fixed'", "3: spells 'static:'"]
    finally:
        PACKAGE = saved
