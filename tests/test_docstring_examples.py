"""Every `>>>` example in the package's docstrings runs and shows what it prints."""

import doctest
import importlib
import pkgutil

import pytest

import keras_rlnas

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

pytestmark = pytest.mark.usefixtures("quick_graph_compilation")


def runnable_examples(module):
    """The module's docstring tests, with how many of their examples are not marked `+SKIP`."""
    tests = doctest.DocTestFinder().find(module)
    return tests, sum(not example.options.get(doctest.SKIP) for test in tests for example in test.examples)


def modules_with_examples():
    names = []
    for info in pkgutil.walk_packages(keras_rlnas.__path__, "keras_rlnas."):
        # A `__main__` module runs its command when imported.
        if info.name.endswith("__main__"):
            continue
        if runnable_examples(importlib.import_module(info.name))[1]:
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run_as_shown(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Examples that write files write them here.
    tests, runnable = runnable_examples(importlib.import_module(name))
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted == runnable
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
