"""Execute the teaching notebooks with tiny budgets and check their key printed results.

Each notebook runs in a fresh ipykernel of this interpreter, from a temporary working folder,
with ``LM_ENVS_NOTEBOOK_QUICK=1`` and its own ``LM_ENVS_CACHE``. The kernel spec is written to
a temporary folder, so nothing is registered globally.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

import lm_envs

REPOSITORY = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPOSITORY / "notebooks"
NOTEBOOK_NAMES = ("01_environments.ipynb", "02_dqn_vs_baselines.ipynb")
# Seconds one cell may run. In quick mode a whole notebook takes a few seconds on a 2-core CPU.
CELL_TIMEOUT = 300


@pytest.fixture(scope="module")
def kernel_folder(tmp_path_factory) -> Path:
    """A folder with one kernel spec, ``python3``, that starts ipykernel in this interpreter."""
    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / "python3")
    return folder


@pytest.fixture(scope="module")
def notebook_cache(tmp_path_factory) -> Path:
    """One cache folder for both notebooks, so the pydoc corpus is encoded once."""
    return tmp_path_factory.mktemp("notebook_cache")


def execute_notebook(
    name: str, kernel_folder: Path, cache: Path, workdir: Path, monkeypatch
) -> nbformat.NotebookNode:
    """Run every cell of ``notebooks/name`` in quick mode and return the executed notebook."""
    monkeypatch.setenv("LM_ENVS_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("LM_ENVS_CACHE", str(cache))
    # The kernel imports lm_envs and agents from this checkout, whatever is installed.
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY), prepend=os.pathsep)
    # ipykernel selects the inline backend, which returns figures as images, only when
    # MPLBACKEND is unset.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    specs = KernelSpecManager(kernel_dirs=[str(kernel_folder)], ensure_native_kernel=False)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return notebook


def printed_text(notebook: nbformat.NotebookNode) -> str:
    """Return everything the code cells wrote to stdout, in cell order."""
    pieces = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                pieces.append(output.text)
    return "".join(pieces)


def error_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    return [
        f"{output.ename}: {output.evalue}"
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]


def number_after(pattern: str, text: str) -> float:
    """Return the number captured by the first group of ``pattern`` in ``text``."""
    match = re.search(pattern, text)
    assert match is not None, f"no line matches {pattern!r} in the notebook output"
    return float(match.group(1).replace(",", ""))


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell.outputs == [], f"cell {cell.id} of {name} has stored outputs"
        assert cell.execution_count is None, f"cell {cell.id} of {name} has an execution count"


def test_environments_notebook_runs(kernel_folder, notebook_cache, tmp_path, monkeypatch):
    notebook = execute_notebook(
        "01_environments.ipynb", kernel_folder, notebook_cache, tmp_path, monkeypatch
    )
    assert error_outputs(notebook) == []
    text = printed_text(notebook)

    assert "quick mode: True" in text
    assert "same next observation: True" in text
    assert text.count("round trip: True") == 3
    assert "terminated True, truncated False" in text
    assert "row i equals a single env reset with seed i: True" in text
    assert number_after(r"native batch:\s+([\d,]+) steps/s", text) > 0
    assert number_after(r"sync vector:\s+([\d,]+) steps/s", text) > 0
    for env_id in lm_envs.ENVIRONMENTS:
        assert env_id in text

    assert number_after(r"oracle\s+([\d.]+)", text) == 1.0
    assert number_after(r"oracle\s+[\d.]+\s+([\d.]+)", text) == 1.0
    assert number_after(r"random\s+[\d.]+\s+([\d.]+)", text) < 1.0

    optimum = number_after(r"accuracy, exact optimum:\s+([\d.]+)", text)
    measured = number_after(r"accuracy, measured oracle:\s+([\d.]+) \+-", text)
    standard_error = number_after(r"accuracy, measured oracle:\s+[\d.]+ \+- ([\d.]+)", text)
    assert 0.0 < optimum < 1.0
    assert abs(measured - optimum) <= 4 * standard_error + 1e-9
    entropy_bits = number_after(r"bits/token, entropy rate:\s+([\d.]+)", text)
    measured_bits = number_after(r"bits/token, measured oracle:\s+([\d.]+)", text)
    assert abs(measured_bits - entropy_bits) < 0.1 * entropy_bits


def test_dqn_notebook_runs(kernel_folder, notebook_cache, tmp_path, monkeypatch):
    notebook = execute_notebook(
        "02_dqn_vs_baselines.ipynb", kernel_folder, notebook_cache, tmp_path, monkeypatch
    )
    assert error_outputs(notebook) == []
    text = printed_text(notebook)

    assert "quick mode: True" in text
    assert number_after(r"DQN: ([\d,]+) environment steps", text) >= 4096
    accuracies = {
        agent: number_after(rf"\n{agent}\s+([\d.]+)", text)
        for agent in ("supervised", "unigram", "trigram", "random", "dqn")
    }
    for agent, accuracy in accuracies.items():
        assert 0.0 <= accuracy <= 1.0, f"{agent} accuracy {accuracy}"
    assert accuracies["trigram"] > accuracies["unigram"] > accuracies["random"]
    assert 0.0 <= number_after(r"validation accuracy ([\d.]+)", text) <= 1.0

    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 1
