"""The layering of pytools (pyproject.toml's import-linter contracts) holds, and breaks when an
import points the wrong way: checked on the real tree and on copies with an import planted."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
LINT = shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (requirements.txt)")


def lint(root):
    """Run lint-imports on the `pytools` package under `root` with the repository's contracts."""
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run([LINT, "--no-cache", "--no-logo", os.path.join(root, "pyproject.toml")],
                          cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120)
    return proc.returncode, proc.stdout


def planted(tmp_path, module, line):
    """A copy of the package and its contracts with `line` added to the end of `module`."""
    root = str(tmp_path / "tree")
    shutil.copytree(os.path.join(ROOT, "pytools"), os.path.join(root, "pytools"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), root)
    with open(os.path.join(root, *module.split(".")) + ".py", "a") as f:
        f.write("\n" + line + "\n")
    return root


def test_the_tree_keeps_every_contract():
    code, out = lint(ROOT)
    assert code == 0, out
    assert "BROKEN" not in out and "3 kept, 0 broken" in out, out


@pytest.mark.parametrize("module, line, broken, names", [
    ("pytools.core.config", "import pytools.registry.settings  # noqa",
     "commands above the areas, the areas above the core",
     "pytools.core.config -> pytools.registry.settings"),
    ("pytools.registry.base", "from pytools.commands import leaf  # noqa",
     "commands above the areas, the areas above the core",
     "pytools.registry.base -> pytools.commands"),
    ("pytools.fleet.rollout", "import pytools.registry  # noqa",   # siblings are independent
     "commands above the areas, the areas above the core",
     "pytools.fleet.rollout -> pytools.registry"),
    ("pytools.fleet.agent.robot_agent", "import yaml  # noqa",
     "the robot agent imports only the standard library",
     "pytools.fleet.agent.robot_agent -> yaml"),
])
def test_a_planted_wrong_way_import_breaks_its_contract(tmp_path, module, line, broken, names):
    code, out = lint(planted(tmp_path, module, line))
    assert code != 0, out
    assert "%s BROKEN" % broken in out, out
    assert names in out, out


def test_a_planted_cycle_between_siblings_breaks(tmp_path):
    # golden -> pipeline closes a cycle inside the build layer: the pipeline imports the stage
    # modules, and the engine and parity stages import golden (lazily; the graph counts it).
    root = planted(tmp_path, "pytools.build.golden", "import pytools.build.pipeline  # noqa")
    code, out = lint(root)
    assert code != 0, out
    assert "no import cycles between sibling modules BROKEN" in out, out



def test_the_robot_agent_imports_nothing_but_the_standard_library():
    """The forbidden contract names the third-party packages pytools knows; this catches any other."""
    import ast
    import sys

    from pytools.fleet.agent import robot_agent

    with open(robot_agent.__file__) as f:
        tree = ast.parse(f.read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    assert imported and imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
