"""Layering of ``models/``: it imports nothing above it, no module of the package is in an import
cycle (type-only imports included), and no ``getattr(model, ..., default)`` probe is left where
the :class:`~smartiesviz.models.protocol.SmartiesModel` Protocol says what a model offers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

PACKAGE = Path(__file__).resolve().parents[2] / "smartiesviz"
#: what ``models/`` may import from the package: itself, the spectrum registry and the leaf
#: modules that import nothing of the package above them
BELOW_MODELS = (
    "smartiesviz.models", "smartiesviz.spectrum", "smartiesviz.holdout", "smartiesviz.outputs",
    "smartiesviz.errors", "smartiesviz._version", "smartiesviz.yamlfile", "smartiesviz.lazy",
    "smartiesviz.options",
)  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, module_level_only: bool) -> set[str]:
    """``smartiesviz.*`` modules (or ``module.name`` of ``from module import name``) that a file
    imports; ``module_level_only``: not inside functions (``if TYPE_CHECKING:`` blocks count)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import) and not (module_level_only and in_function):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and not (module_level_only and in_function):
                if child.level == 0 and child.module:
                    found.update(f"{child.module}.{a.name}" for a in child.names)
                    found.add(child.module)
            visit(child, inside)

    visit(tree, False)
    return {name for name in found if name == "smartiesviz" or name.startswith("smartiesviz.")}


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_models_import_nothing_above_them() -> None:
    modules = package_modules()
    bad = {}
    for name, path in modules.items():
        if not name.startswith("smartiesviz.models"):
            continue
        targets = {t for t in imported_names(path, module_level_only=False) if t in modules}
        if up := sorted(t for t in targets if not t.startswith(BELOW_MODELS)):
            bad[name] = up
    assert not bad, f"models/ imports upwards: {bad}"
    leaves = [m for m in BELOW_MODELS if m not in ("smartiesviz.models", "smartiesviz.spectrum")]
    for leaf in leaves:  # and the leaves stay leaves
        targets = {t for t in imported_names(modules[leaf], False) if t in modules}
        assert targets <= set(BELOW_MODELS) - {"smartiesviz.models"}, (leaf, targets)


def test_importing_models_loads_nothing_above_them() -> None:
    code = (
        "import sys, json, smartiesviz.models, smartiesviz.models.protocol; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('smartiesviz.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if not m.startswith(BELOW_MODELS)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module → modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def import_graph(prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    """Module-level imports (type-only ones included) among the modules under ``prefixes``.
    ``from package import module`` is an edge to the module; a package's own ``__init__`` is not
    an edge of its submodules (Python runs it first, whatever they import)."""
    modules = package_modules()
    graph = {}
    for name, path in modules.items():
        if name.startswith(prefixes):
            targets = {t for t in imported_names(path, module_level_only=True) if t in modules}
            graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph(("smartiesviz",))
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # it finds one


def test_no_getattr_probes_on_models() -> None:
    files = [*PACKAGE.joinpath("models").rglob("*.py"), PACKAGE / "export.py",
             *PACKAGE.joinpath("integrations").rglob("*.py")]  # fmt: skip
    probes = []
    for path in files:
        if path.name in ("heads.py", "classes.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "getattr" and isinstance(node.args[0], ast.Name)
                    and node.args[0].id in ("model", "encoder", "enc", "obj")):  # fmt: skip
                probes.append(f"{path.name}:{node.lineno}")
    assert not probes, f"getattr probes on a model (use SmartiesModel's members): {probes}"


def test_models_satisfy_the_protocol() -> None:
    import torch

    from smartiesviz.models.encoder import SmartiesEncoder
    from smartiesviz.models.factories import smarties_vit_tiny_patch8
    from smartiesviz.models.protocol import SmartiesModel

    enc = SmartiesEncoder(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2)
    for model in (smarties_vit_tiny_patch8(), enc):
        assert isinstance(model, SmartiesModel)
    assert smarties_vit_tiny_patch8().arch_name == "smarties_vit_tiny_patch8"
    assert enc.arch_name == "SmartiesEncoder" and enc.checkpoint_path is None
    assert not isinstance(torch.nn.Linear(2, 2), SmartiesModel)


def test_export_cli_token_norms_are_the_option_values() -> None:
    from smartiesviz.export_cli import TOKEN_NORMS
    from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm

    assert TOKEN_NORMS == get_args(TokenNorm) and TOKEN_NORMS[0] == DEFAULT_TOKEN_NORM
