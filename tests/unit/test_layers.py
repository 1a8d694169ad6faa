"""The package's layers, checked on its source: each module imports only from its own package or
from layers below it, and no two modules import each other, directly or in a cycle.

    errors  <  core  <  choices  <  data  <  explanations  <  models  <  methods  <  imil   (the library)
                  <  schema  <  config  <  reporting  <  evaluation  <  run, review  <  inference
                  <  cli, notebook, hkd

No library module (data, explanations, models, methods, imil) imports OmegaConf: the composition root
``hkd.run.build`` turns the configuration into the plain values and parts they take.

Run alone: ``python -m pytest tests/unit/test_layers.py -q``."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "hkd"

LAYERS = [
    ("errors", ["hkd.errors"]),
    ("core", ["hkd.atomic", "hkd.config.registry", "hkd.config.experiment_files"]),
    ("choices", ["hkd.config.choices"]),
    ("data", ["hkd.data"]),
    ("explanations", ["hkd.explanations"]),
    ("models", ["hkd.models"]),
    ("methods", ["hkd.methods"]),
    ("imil", ["hkd.imil"]),
    ("schema", ["hkd.config.schema"]),
    ("config", ["hkd.config"]),
    ("reporting", ["hkd.reporting"]),
    ("evaluation", ["hkd.evaluation"]),
    ("run", ["hkd.run", "hkd.review"]),
    ("inference", ["hkd.inference"]),
    ("entry points", ["hkd.cli", "hkd.notebook", "hkd"]),
    ("python -m hkd", ["hkd.__main__"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def names(prefix: str, module: str) -> bool:
    """Whether a layer entry names the module: itself, or a module inside that package (the top
    package ``hkd`` names only its own ``__init__``, so a new package is in no layer until listed)."""
    return module == prefix or (prefix != "hkd" and module.startswith(prefix + "."))


def owner(module: str) -> tuple[int, str] | None:
    """(layer rank, package prefix) of the most specific entry that names the module; None when
    no layer does."""
    named = [(rank, prefix) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
             if names(prefix, module)]
    return max(named, key=lambda item: len(item[1])) if named else None


def imports(module: str) -> set[str]:
    """Every hkd module ``module`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                     else node.module for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES and name != module)
    return found


GRAPH = {module: imports(module) for module in MODULES}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes up a layer or sideways into another package of the same layer."""
    found = []
    for module, imported_modules in sorted(graph.items()):
        rank, package = owner(module)
        for imported in sorted(imported_modules):
            other_rank, other_package = owner(imported)
            if not (other_rank < rank or other_package == package):
                found.append(f"{module} ({LAYERS[rank][0]}) imports {imported} ({LAYERS[other_rank][0]})")
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    visiting, done = [], set()

    def visit(module: str) -> list[str] | None:
        if module in visiting:
            return visiting[visiting.index(module):] + [module]
        if module in done:
            return None
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle:
                return cycle
        visiting.pop()
        done.add(module)
        return None

    return next((cycle for module in sorted(graph) if (cycle := visit(module))), None)


def test_every_module_has_a_layer():
    assert "hkd.run.experiment" in MODULES and len(MODULES) > 40
    assert [module for module in MODULES if owner(module) is None] == []
    assert "hkd.data.dataset" in GRAPH["hkd.data.training_images"]  # imports are found


def test_a_new_package_missing_from_the_layer_list_has_no_layer():
    assert owner("hkd.new_package.module") is None and owner("hkd.new_module") is None
    assert owner("hkd") == (len(LAYERS) - 2, "hkd") and owner("hkd.data.formats.folder")[1] == "hkd.data"


def test_imports_go_down_or_stay_in_the_package():
    assert layer_violations(GRAPH) == []


def test_no_import_cycles():
    assert find_cycle(GRAPH) is None


def test_the_checks_catch_an_upward_import_and_a_cycle():
    upward = {**GRAPH, "hkd.data.dataset": GRAPH["hkd.data.dataset"] | {"hkd.run.experiment"}}
    assert layer_violations(upward) == ["hkd.data.dataset (data) imports hkd.run.experiment (run)"]
    sideways = {"hkd.review.app": {"hkd.run.stage"}}
    assert len(layer_violations(sideways)) == 1
    cyclic = {**GRAPH, "hkd.imil.edits": GRAPH["hkd.imil.edits"] | {"hkd.imil.callback"}}
    cycle = find_cycle(cyclic)
    assert cycle[0] == cycle[-1] and {"hkd.imil.edits", "hkd.imil.callback"} <= set(cycle)


LIBRARY = ("hkd.data", "hkd.explanations", "hkd.models", "hkd.methods", "hkd.imil")


def config_readers(modules: dict[str, Path]) -> list[str]:
    """Library modules that import OmegaConf: below the run wing, constructors take plain values
    and built parts, and only ``hkd.run.build`` (and the CLI above it) turns the config into them."""
    found = []
    for module, path in modules.items():
        if not module.startswith(LIBRARY):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] == "omegaconf" for name in imported):
                found.append(module)
    return found


def test_no_library_module_reads_the_configuration(tmp_path):
    assert config_readers(MODULES) == []
    reader = tmp_path / "reader.py"
    reader.write_text("from omegaconf import DictConfig\n")
    assert config_readers({"hkd.data.reader": reader, "hkd.run.reader": reader}) == ["hkd.data.reader"]
