"""The papermill runner behind `make run`: parameters injected, outputs kept, failures reported."""

from pathlib import Path

import nbformat
import pytest

from mlsys import course


def _notebook(path: Path, body: str) -> Path:
    params = nbformat.v4.new_code_cell("FAST = True")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_execute_injects_parameters_and_keeps_outputs(tmp_path: Path) -> None:
    source = _notebook(tmp_path / "lesson.ipynb", "print('fast' if FAST else 'full')")
    seconds = course.execute(source, tmp_path / "out.ipynb", {"FAST": False}, course.headless_env())
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert seconds > 0
    assert executed.cells[-1].outputs[0]["text"] == "full\n"


def test_a_failing_cell_raises_with_its_error(tmp_path: Path) -> None:
    import papermill

    source = _notebook(tmp_path / "broken.ipynb", "raise ValueError('bad cell')")
    with pytest.raises(papermill.PapermillExecutionError, match="bad cell"):
        course.execute(source, tmp_path / "out.ipynb", {}, course.headless_env())


def test_kernel_is_reached_over_unix_sockets(tmp_path: Path) -> None:
    source = _notebook(
        tmp_path / "transport.ipynb",
        "import json\nfrom ipykernel import get_connection_info\nprint(json.loads(get_connection_info())['transport'])",
    )
    course.execute(source, tmp_path / "out.ipynb", {}, course.headless_env())
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"] == "ipc\n"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="fast"):
        course.run_course("quick")
