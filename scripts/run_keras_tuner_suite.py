"""Runs Keras Tuner's own tests against `keras_rlnas.RLSearch` and `ControllerOracle`.

The promise of `RLSearch` is "swap it in for `RandomSearch` and nothing else
changes", so the Keras team's tests of `RandomSearch` are the yardstick. This
script copies the `keras_tuner` package of a keras-tuner source checkout into
a scratch folder, rewrites the chosen test files there (`RandomSearch` ->
`keras_rlnas.RLSearch`, `RandomSearchOracle` -> `keras_rlnas.ControllerOracle`)
and runs them with pytest. Nothing is written into the checkout or this repo.

The checkout's library code is what the tests import, so it should be the
release being checked (for 1.4.8: commit 417e5b5 of keras-team/keras-tuner;
its library equals the 1.4.8 wheel except one default in
`applications/augment.py` and the version string). It needs `portpicker` and
`scikit-learn` besides this package's own dependencies.

Usage:

```shell
git clone https://github.com/keras-team/keras-tuner /tmp/keras-tuner
python scripts/run_keras_tuner_suite.py /tmp/keras-tuner            # ours
python scripts/run_keras_tuner_suite.py /tmp/keras-tuner --stock    # RandomSearch itself
python scripts/run_keras_tuner_suite.py /tmp/keras-tuner -- -k exhausted -x
```

The exit status is pytest's: 0 when every test passes.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

DEFAULT_TESTS = (
    "engine/tuner_test.py",
    "engine/base_tuner_test.py",
    "engine/oracle_test.py",
    "tuners/randomsearch_test.py",
    "distribute/oracle_chief_test.py",
    "distribute/oracle_client_test.py",
    "integration_tests/end_to_end_test.py",
)

# `keras_tuner.tuners.randomsearch.RandomSearchOracle`, `randomsearch.RandomSearch`,
# ...: the whole dotted name goes, a longer name (`MyRandomSearch`) stays.
_ORACLE = re.compile(r"(?<![\w.])(?:\w+\.)*RandomSearchOracle\b")
_TUNER = re.compile(r"(?<![\w.])(?:\w+\.)*RandomSearch\b")

# Installed wheels put the library under `keras_tuner.src`; a checkout does
# not. keras_rlnas imports a few `keras_tuner.src` modules, which must be the
# very modules the tests patch, so the names are aliased, not re-imported.
_CONFTEST = '''
import importlib
import importlib.abc
import importlib.util
import sys


class _SrcAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "keras_tuner.src" or name.startswith("keras_tuner.src."):
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return importlib.import_module(spec.name.replace(".src", "", 1))

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _SrcAlias())
'''


def rewrite(source):
    """`source` of a Keras Tuner test with our tuner and oracle in place of the random ones.

    Args:
        source: text of a test module.

    Returns:
        The text with `RandomSearchOracle` and `RandomSearch` (under any
        module path) replaced and `import keras_rlnas` added.

    Example:

    >>> rewrite("import os\\nt = keras_tuner.tuners.RandomSearch(o=randomsearch.RandomSearchOracle())\\n")
    'import keras_rlnas\\nimport os\\nt = keras_rlnas.RLSearch(o=keras_rlnas.ControllerOracle())\\n'
    """
    text = _ORACLE.sub("keras_rlnas.ControllerOracle", source)
    text = _TUNER.sub("keras_rlnas.RLSearch", text)
    first_import = re.search(r"^(import|from) ", text, flags=re.MULTILINE)
    at = first_import.start() if first_import else 0
    return text[:at] + "import keras_rlnas\n" + text[at:]


def prepare(checkout, workdir, tests, stock=False):
    """Copies the checkout's `keras_tuner` package into `workdir`, tests rewritten.

    Args:
        checkout: root of a keras-tuner source checkout.
        workdir: an empty scratch folder.
        tests: test files, relative to the `keras_tuner` package.
        stock: leave the tests as they are (to run `RandomSearch` itself).

    Returns:
        The paths of the test files to run.
    """
    package = os.path.join(checkout, "keras_tuner")
    if not os.path.isfile(os.path.join(package, "engine", "tuner.py")):
        raise SystemExit(f"{checkout!r} is not a keras-tuner source checkout (no keras_tuner/engine/tuner.py).")
    shutil.copytree(package, os.path.join(workdir, "keras_tuner"), ignore=shutil.ignore_patterns("__pycache__"))
    with open(os.path.join(workdir, "conftest.py"), "w") as f:
        f.write(_CONFTEST)
    paths = []
    for test in tests:
        path = os.path.join(workdir, "keras_tuner", test)
        if not os.path.isfile(path):
            raise SystemExit(f"No test file {test!r} in {package!r}.")
        if not stock:
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(rewrite(text))
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", help="root of a keras-tuner source checkout")
    parser.add_argument("--stock", action="store_true", help="run the tests unchanged, on RandomSearch")
    parser.add_argument("--tests", nargs="+", default=list(DEFAULT_TESTS), help="test files under keras_tuner/")
    parser.add_argument("--keep", metavar="DIR", help="prepare in DIR (kept) instead of a temporary folder")
    parser.epilog = "Arguments after `--` go to pytest."
    argv = sys.argv[1:] if argv is None else list(argv)
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    checkout = os.path.abspath(args.checkout)
    workdir = args.keep or tempfile.mkdtemp(prefix="kt-suite-")
    os.makedirs(workdir, exist_ok=True)
    if os.listdir(workdir):
        raise SystemExit(f"--keep folder {workdir!r} is not empty.")
    try:
        paths = prepare(checkout, workdir, args.tests, stock=args.stock)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([workdir, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "--rootdir", workdir]
        return subprocess.call(command + paths + pytest_args, cwd=workdir, env=env)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
