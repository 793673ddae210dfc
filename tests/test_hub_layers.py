"""``node.hub``'s docstring sorts its modules into layers; the library ones really import
no web framework and no database (directly or through other hub modules)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import node.hub

HUB_DIR = Path(node.hub.__file__).parent
LIBRARY = ("contribution", "index", "query_runner", "maintained_answers", "sparql", "search", "structure",
           "editions", "changelog", "render", "pdf", "dump", "settings")
FORBIDDEN = ("aiohttp", "sqlalchemy", "asyncpg", "aiosqlite", "node.storage", "node.app",
             "node.routes", "node.api", "node.web")


def imported(module: str) -> set[str]:
    tree = ast.parse((HUB_DIR / f"{module}.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            names.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom) and statement.module:
            names.add(statement.module)
            if statement.module == "node.hub":
                names.update(f"node.hub.{alias.name}" for alias in statement.names)
    return names


def reachable(module: str) -> set[str]:
    """Everything ``module`` imports, following imports of other hub modules."""
    seen, todo, found = {module}, [module], set()
    while todo:
        for name in imported(todo.pop()):
            found.add(name)
            if name.startswith("node.hub.") and (sub := name.split(".")[2]) not in seen:
                seen.add(sub)
                todo.append(sub)
    return found


def test_library_modules_have_no_web_or_database_imports() -> None:
    for module in LIBRARY:
        bad = {name for name in reachable(module)
               if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
        assert bad == set(), (module, bad)


def test_the_docstring_names_every_module_once() -> None:
    doc = node.hub.__doc__ or ""
    modules = sorted(path.stem for path in HUB_DIR.glob("*.py") if path.stem != "__init__")
    for module in modules:
        assert doc.count(f"``{module}``") == 1, module
    library_part = doc.split("Storage")[0]
    assert all(f"``{module}``" in library_part for module in LIBRARY)


def test_importing_the_library_layer_loads_no_web_framework_or_database() -> None:
    modules = ", ".join(f"node.hub.{module}" for module in LIBRARY)
    probe = (f"import sys, {modules}\n"
             "print(sorted(m for m in ('aiohttp', 'sqlalchemy', 'asyncpg', 'aiosqlite') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout
